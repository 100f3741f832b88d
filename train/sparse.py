"""Thin entry point; the recipe (configs, CPU and TPU modes, command lines) is jaxir/recipes/sparse.py.

    python train/sparse.py --help
"""
from jaxir.recipes.sparse import main

if __name__ == "__main__":
    main()
