"""Training recipes: one module per method, each with a CPU (SciFact) and a TPU (MS MARCO) mode.

`jaxir train --recipe NAME ...` and the thin scripts in `train/` both call `main(argv)` here.
"""

# Recipe name (`jaxir train --recipe NAME`) -> module in this package; a new method adds one line.
RECIPES = {"cross-encoder": "cross_encoder", "colbert": "colbert", "sparse": "sparse", "splade": "splade",
           "i3": "i3", "mice": "mice"}


def entry_points(doc: str, recipe_cls, default, train, *, modes: dict, flags: dict, derived: dict,
                 out_help: str = "output folder (see Outputs above)", eval_metrics: tuple[str, ...] = ()):
    """(parse_args, main) of a recipe module. parse_args(argv) -> (config, --out); main(argv)
    trains (`train(config, out) -> (saved model folder, FitResult)`) and prints where it saved.
    `eval_metrics`: the held-out metrics training evaluates (what --fit.best_metric may name)."""
    import functools

    from jaxir.config_cli import parse_recipe

    parse_args = functools.partial(parse_recipe, doc, recipe_cls, default, modes=modes, flags=flags,
                                   derived=derived, out_help=out_help, check=best_metric_check(eval_metrics))

    def main(argv=None) -> None:
        path, result = train(*parse_args(argv))
        print(f"saved {path}; last train metrics {result.last_train}")
    return parse_args, main


def best_metric_check(eval_metrics: tuple[str, ...] = ()):
    """The parse-time check of a recipe whose training evaluates `eval_metrics` on held-out data
    (none: it evaluates nothing): --fit.best_metric must name one of them."""
    def check(recipe) -> None:
        from jaxir.training.loop import check_best_metric

        check_best_metric(recipe.fit, eval_metrics)
    return check
