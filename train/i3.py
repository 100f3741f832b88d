"""Thin entry point; the recipe (configs, CPU and TPU modes, command lines) is jaxir/recipes/i3.py.

    python train/i3.py --help
"""
from jaxir.recipes.i3 import main

if __name__ == "__main__":
    main()
