"""Training recipes: one module per method, each with a CPU (SciFact) and a TPU (MS MARCO) mode.

`jaxir train --recipe NAME ...` and the thin scripts in `train/` both call `main(argv)` here.
"""
