"""jaxir: neural information retrieval in JAX.

Importing `jaxir` is cheap: submodules (models, ops, methods, training) are imported on demand,
and `jaxir.index` never imports JAX, so search runs on machines without accelerators.
"""

__version__ = "0.1.0"
