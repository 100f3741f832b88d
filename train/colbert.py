"""Thin entry point; the recipe (configs, CPU and TPU modes, command lines) is jaxir/recipes/colbert.py.

    python train/colbert.py --help
"""
from jaxir.recipes.colbert import main

if __name__ == "__main__":
    main()
