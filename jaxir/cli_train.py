"""`jaxir train --recipe R ...`: every option checked before any data is read (the recipe's
parse, then what needs its model's shapes: `jaxir.plan.preflight`), then the recipe runs."""
from __future__ import annotations

import importlib
import os
from pathlib import Path


def cmd_train(args, extra: list[str]) -> None:
    from jaxir.cli_paths import beir_folder, refuse_clobber
    from jaxir.parallel import maybe_initialize_distributed
    from jaxir.plan.preflight import check_recipe
    from jaxir.recipes import RECIPES

    # The recipe's own options name inputs too (--init-from, --negatives, ...): any value that
    # names an existing path is taken for one.
    values = [a.split("=", 1)[-1] for a in extra]
    refuse_clobber("train", {"--out": args.out},
                   {"--data": args.data and beir_folder(args.data),
                    "a recipe option": [v for v in values if v and os.path.lexists(Path(v).expanduser())]})
    maybe_initialize_distributed(auto=os.environ.get("JAXIR_DISTRIBUTED") == "auto")
    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[args.recipe]}")
    argv = [*extra, *(["--data", args.data] if args.data else []), "--out", args.out]
    parsed = recipe.parse_args(argv, prog=f"jaxir train --recipe {args.recipe}")  # not argv[0]
    check_recipe(args.recipe, parsed[0])  # a bad option: a usage error, rc 2
    recipe.main(argv, parsed=parsed)
