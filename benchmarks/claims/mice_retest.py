"""MICE's claims re-tested with its document sinks and trained layer dropping (issue 37, item 5).

One cross-encoder (the recipe's CPU SciFact mode) is both MICE's start and teacher. MICE is then
trained four times for the layout question (document layout `sinks` against `bare`, at fusion
layer l_f 2 and 3) and twice more for layer dropping (sinks, l_f 3, trained with L' = 5 and 4
layers against the default 6). Every model reranks BM25's top 100 on SciFact test (in domain) and
NFCorpus test (out of domain) with its checkpoint's alpha, as does the cross-encoder alone; the
report compares each run with its reference by `jaxir compare` (nDCG@10, paired randomisation p).
Nothing is chosen here: every configuration is one the issue names.

    python -m benchmarks.claims.mice_retest --beir ../shared/data/beir [--out runs/mice-retest] \
        [--only NAME,...] [--dry-run]

Resumable as the sparse teacher grid is (`benchmarks.harness.steps`): a step whose output exists
is not run again. Logs: OUT/logs/STEP.log; wall seconds per step: OUT/steps.jsonl; the
comparison table: OUT/report.md. Latency at each L' is `python -m benchmarks.speed.bench_mice`.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness.steps import JAXIR, Step, add_plan_options, module, run_plan, select

DATASETS = ("scifact", "nfcorpus")
# name -> MICE recipe overrides; the reference each is compared with comes after it.
MODELS = {
    "sinks-lf3": [],
    "bare-lf3": ["--model.doc_layout", "bare"],
    "sinks-lf2": ["--model.fusion_layer", "2"],
    "bare-lf2": ["--model.doc_layout", "bare", "--model.fusion_layer", "2"],
    "sinks-lf3-L5": ["--model.num_layers", "5"],
    "sinks-lf3-L4": ["--model.num_layers", "4"],
}
COMPARISONS = [("sinks-lf3", "bare-lf3"), ("sinks-lf2", "bare-lf2"), ("sinks-lf3", "ce"), ("sinks-lf2", "ce"),
               ("sinks-lf3-L5", "sinks-lf3"), ("sinks-lf3-L4", "sinks-lf3")]


def run_file(out: Path, name: str, dataset: str) -> Path:
    return out / "runs" / f"{name}.{dataset}.trec"


def eval_steps(name: str, method: str, checkpoint: Path, beir: Path, out: Path, after: list[str]) -> list[Step]:
    """Index (MICE's document states) and rerank BM25's top 100 on each test set."""
    steps = []
    for ds in DATASETS:
        index = out / "indexes" / f"{name}.{ds}"
        wait = list(after)
        if method == "mice":
            steps.append(Step(f"{name}-index-{ds}", JAXIR + ["index", "--method", "mice", "--checkpoint", str(checkpoint),
                                                             "--data", str(beir / ds), "--out", str(index)],
                              index / "manifest.json", after=after))
            wait = [f"{name}-index-{ds}"]
        steps.append(Step(f"{name}-eval-{ds}", JAXIR + ["eval", "--method", method, "--checkpoint", str(checkpoint),
                                                        *(["--index", str(index)] if method == "mice" else []),
                                                        "--rerank", "bm25", "--depth", "100", "--data", str(beir / ds),
                                                        "--run", str(run_file(out, name, ds))],
                          run_file(out, name, ds), after=wait))
    return steps


def plan(beir: Path, out: Path) -> list[Step]:
    ce = out / "ce"
    steps = [Step("ce", JAXIR + ["train", "--recipe", "cross-encoder", "--mode", "cpu", "--data", str(beir / "scifact"),
                                 "--out", str(ce), "--data.tuples.draws", "1"], ce / "cross-encoder" / "model.json")]
    steps += eval_steps("ce", "cross-encoder", ce, beir, out, ["ce"])
    for name, overrides in MODELS.items():
        folder = out / name
        steps.append(Step(name, JAXIR + ["train", "--recipe", "mice", "--mode", "cpu-scifact", "--data", str(beir / "scifact"),
                                         "--out", str(folder), "--init-from", str(ce), *overrides],
                          folder / "mice" / "model.json", after=["ce"]))
        steps += eval_steps(name, "mice", folder / "mice", beir, out, [name])
    report = out / "report.md"
    steps.append(Step("report", module("benchmarks.claims.mice_retest") + ["--beir", str(beir), "--out", str(out), "--report"],
                      report, stdout=report, after=[s.name for s in steps if "-eval-" in s.name]))
    return steps


def report(beir: Path, out: Path) -> None:
    """One table per test set: each comparison's nDCG@10, difference and paired p."""
    for ds in DATASETS:
        print(f"\n{ds} test, BM25 top 100 reranked\n\n| run | reference | nDCG@10 run | reference | difference (paired p) |\n"
              "|---|---|---|---|---|")
        for run, ref in COMPARISONS:
            text = subprocess.run(JAXIR + ["compare", "--run", str(run_file(out, run, ds)), "--reference",
                                           str(run_file(out, ref, ds)), "--data", str(beir / ds), "--metric", "ndcg@10"],
                                  cwd=ROOT, capture_output=True, text=True, check=True).stdout
            line = next(x for x in text.splitlines() if x.startswith("ndcg@10:"))
            words = line.replace(",", "").split()  # ndcg@10: run R reference F difference D over N queries ... p = P
            print(f"| {run} | {ref} | {words[2]} | {words[4]} | {words[6]} (p {words[-1]}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beir", type=Path, required=True, help="folder holding scifact/ and nfcorpus/")
    ap.add_argument("--out", type=Path, default=None, help="default: runs/mice-retest")
    add_plan_options(ap)
    ap.add_argument("--report", action="store_true", help="(the last step) print the comparison tables")
    args = ap.parse_args()
    beir, out = args.beir.resolve(), (args.out or ROOT / "runs" / "mice-retest").resolve()
    if args.report:
        return report(beir, out)
    run_plan(select(plan(beir, out), args.only), out, args.dry_run)


if __name__ == "__main__":
    main()
