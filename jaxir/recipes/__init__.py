"""Training recipes: one module per method, each with CPU (SciFact), smoke and TPU (MS MARCO) modes.

`jaxir train --recipe NAME ...` and the thin scripts in `train/` both call `main(argv)` here;
`jaxir train --recipe NAME --help` prints the recipe's options and modes.
"""

# Recipe name (`jaxir train --recipe NAME`) -> module in this package; a new method adds one line.
RECIPES = {"cross-encoder": "cross_encoder", "colbert": "colbert", "sparse": "sparse", "splade": "splade",
           "i3": "i3", "mice": "mice"}

# Every recipe has this mode: a few steps of a tiny batch on a few train queries, to see that a
# run goes through end to end (the sizes of the recipe's own tests).
SMOKE = "smoke"


def recipe_module(name: str):
    """The module of recipe `name` (a key of RECIPES)."""
    import importlib

    return importlib.import_module(f"{__name__}.{RECIPES[name]}")


def print_recipe_help(argv: list[str]) -> None:
    """`jaxir train --recipe NAME --help` (`argv`: what follows "train"): print the recipe's help,
    its options generated from its dataclasses and one line per mode, and exit. Without a
    --recipe it returns, and train's own help follows."""
    import argparse

    ap = argparse.ArgumentParser(prog="jaxir train", add_help=False)
    ap.add_argument("--recipe", choices=sorted(RECIPES))
    name = ap.parse_known_args(argv)[0].recipe
    if name is not None:
        recipe_module(name).parse_args(["--help"], prog=f"jaxir train --recipe {name}")


def modes_markdown() -> str:
    """The README's table of every recipe's modes, one row each: what the mode overrides."""
    from jaxir.config.options import describe_modes

    rows = ["| recipe | mode | overrides of the recipe's defaults |", "|---|---|---|"]
    for name in sorted(RECIPES):
        for i, line in enumerate(describe_modes(recipe_module(name).MODES).splitlines()):
            mode, _, what = line.strip().partition(": ")
            what = f"same as `{what[2:]}`" if what.startswith("= ") else what if what.startswith("(") else f"`{what}`"
            rows.append(f"| {name} | `{mode}`{' (no --mode)' if i == 0 else ''} | {what} |")
    return "\n".join(rows)


def entry_points(doc: str, recipe_cls, default, train, *, modes: dict, flags: dict, derived: dict,
                 warmups: dict | None = None, out_help: str = "output folder (see Outputs above)",
                 eval_metrics: tuple[str, ...] = ()):
    """(parse_args, main) of a recipe module. parse_args(argv) -> (config, --out); main(argv)
    trains (`train(config, out) -> (saved model folder, FitResult)`) and prints where it saved.
    `eval_metrics`: the held-out metrics training evaluates (what --fit.best_metric may name)."""
    import functools

    from jaxir.config.options import parse_recipe

    parse_args = functools.partial(parse_recipe, doc, recipe_cls, default, modes=modes, flags=flags,
                                   derived=derived, warmups=warmups, out_help=out_help,
                                   check=best_metric_check(eval_metrics))

    def main(argv=None, parsed=None) -> None:
        # parsed: parse_args(argv) when the caller parsed it already (twice would say notes twice)
        path, result = train(*(parsed or parse_args(argv)))
        print(f"saved {path}; last train metrics {result.last_train}")
    return parse_args, main


def best_metric_check(eval_metrics: tuple[str, ...] = ()):
    """The parse-time check of a recipe whose training evaluates `eval_metrics` on held-out data
    (none: it evaluates nothing): --fit.best_metric must name one of them."""
    def check(recipe) -> None:
        from jaxir.training.loop import check_best_metric

        check_best_metric(recipe.fit, eval_metrics)
    return check
