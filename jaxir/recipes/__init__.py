"""Training recipes: one module per method, each with a CPU (SciFact) and a TPU (MS MARCO) mode.

`jaxir train --recipe NAME ...` and the thin scripts in `train/` both call `main(argv)` here.
"""

# Recipe name (`jaxir train --recipe NAME`) -> module in this package; a new method adds one line.
RECIPES = {"cross-encoder": "cross_encoder", "colbert": "colbert", "sparse": "sparse"}
