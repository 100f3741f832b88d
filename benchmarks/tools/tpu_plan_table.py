"""The TPU slice table of tpu/README.md and docs/results-log.md, compiled by libtpu on this CPU (issue 38, item 3).

Runs `jaxir plan` for every recipe's tpu-msmarco mode on each topology, remat off and on, one
compile at a time (a cell's `--json` is written atomically and a cell whose JSON exists is not
compiled again, so an interrupted run resumes), then prints the markdown table of every cell
compiled so far and, with `--write FILE` (repeatable), puts it between the table markers of FILE.

    python -m benchmarks.tools.tpu_plan_table --out runs/plan-table \
        [--recipes colbert,i3,sparse,splade,cross-encoder,mice] \
        [--topologies v4:2x2x1,v5e:4x4,v5p:2x2x1,v6e:2x4,v5e:16x16] [--remat off,on] \
        [--backbone bert-base] [--write tpu/README.md] [--dry-run]

Compiles at BERT-base shapes take minutes each on this CPU and need no weights; the figures are
the compiler's allocation and cost analysis, and the times bounds (see `jaxir.plan.report`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.harness.steps import JAXIR, Step, run_plan
from jaxir.plan.table import replace_block, table

RECIPES = "colbert,i3,sparse,splade,cross-encoder,mice"
TOPOLOGIES = "v4:2x2x1,v5e:4x4,v5p:2x2x1,v6e:2x4,v5e:16x16"


def cell_name(recipe: str, topology: str, remat: str) -> str:
    return f"{recipe}.{topology.replace(':', '-')}.remat-{remat}"


def plan(args, out: Path) -> list[Step]:
    steps = []
    for recipe in args.recipes.split(","):
        for topology in args.topologies.split(","):
            for remat in args.remat.split(","):
                name = cell_name(recipe, topology, remat)
                steps.append(Step(name, JAXIR + ["plan", "--recipe", recipe, "--topology", topology, "--backbone",
                                                 args.backbone, "--fit.remat", "true" if remat == "on" else "false",
                                                 "--json", str(out / f"{name}.json")],
                                  out / f"{name}.json"))
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/plan-table"))
    ap.add_argument("--recipes", default=RECIPES)
    ap.add_argument("--topologies", default=TOPOLOGIES)
    ap.add_argument("--remat", default="off,on")
    ap.add_argument("--backbone", default="bert-base")
    ap.add_argument("--write", type=Path, action="append", default=[], help="a document holding the table markers")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps = plan(args, args.out)
    run_plan(steps, args.out, args.dry_run)
    figures = [json.loads(s.done.read_text()) for s in steps if s.done.exists()]
    print(f"{len(figures)} of {len(steps)} cells compiled")
    text = table(figures)
    print(text)
    for doc in args.write:
        doc.write_text(replace_block(doc.read_text(), text))
        print(f"-> {doc}")


if __name__ == "__main__":
    main()
