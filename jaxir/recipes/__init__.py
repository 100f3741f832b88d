"""Training recipes: one module per method, each with a CPU (SciFact) and a TPU (MS MARCO) mode.

`jaxir train --recipe NAME ...` and the thin scripts in `train/` both call `main(argv)` here.
"""

# Recipe name (`jaxir train --recipe NAME`) -> module in this package; a new method adds one line.
RECIPES = {"cross-encoder": "cross_encoder", "colbert": "colbert", "sparse": "sparse", "splade": "splade",
           "i3": "i3", "mice": "mice"}


def entry_points(doc: str, recipe_cls, default, train, *, modes: dict, flags: dict, derived: dict,
                 out_help: str = "output folder (see Outputs above)"):
    """(parse_args, main) of a recipe module. parse_args(argv) -> (config, --out); main(argv)
    trains (`train(config, out) -> (saved model folder, FitResult)`) and prints where it saved."""
    import functools

    from jaxir.config_cli import parse_recipe

    parse_args = functools.partial(parse_recipe, doc, recipe_cls, default, modes=modes, flags=flags,
                                   derived=derived, out_help=out_help)

    def main(argv=None) -> None:
        path, result = train(*parse_args(argv))
        print(f"saved {path}; last train metrics {result.last_train}")
    return parse_args, main
