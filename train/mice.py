"""Thin entry point; the recipe (configs, CPU and TPU modes, command lines) is jaxir/recipes/mice.py.

    python train/mice.py --help
"""
from jaxir.recipes.mice import main

if __name__ == "__main__":
    main()
