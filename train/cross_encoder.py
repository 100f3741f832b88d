"""Thin entry point; the recipe (configs, CPU and TPU modes, command lines) is jaxir/recipes/cross_encoder.py.

    python train/cross_encoder.py --help
"""
from jaxir.recipes.cross_encoder import main

if __name__ == "__main__":
    main()
