"""Configuration: dataclass fields are the settings, and everything about a setting lives on its field.

    bounds.py     the least / greatest value or the choices a field takes (declared once, in its
                  metadata), checked at parse time and again when a config is built in code
    values.py     the text forms of the value types the CLI takes (true|false, "1,0.5", "a=50,b=0")
    options.py    the one field -> command-line option generator (methods, recipes, retrievers, CLI)
    overrides.py  dotted overrides applied to nested config dataclasses
    warmup.py     a recipe's warm-up / schedule checks against the run it configures

This package imports no jax and nothing of jaxir but `jaxir.errors`, so any floor may use it.
"""
