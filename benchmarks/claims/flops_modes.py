"""IDF-aware against uniform FLOPS at matched sparsity reached through training (issue 37, item 2).

For each FLOPS mode the sparse recipe is trained at up to three lambda_d (`--lambdas MODE=L1,L2`,
e.g. chosen from the init gradient shares so that FLOPS is a real share of the encoder gradient),
each model indexed with one document window. The report pairs every IDF-aware index with the
uniform index nearest to it in non-zeros per document (a corpus statistic: no query is read to
choose) and compares each pair on the test split with `sparse_matched.py`, which cuts the denser
index to the sparser one's postings (a small cut when training already matched them) and gives
nDCG@10, postings and ms per query, and the paired p.

    python -m benchmarks.claims.flops_modes --data ../shared/data/beir/scifact \
        --lambdas idf_aware=0.01,0.1 --lambdas uniform=0.001,0.01 [--out runs/flops-scifact] [--dry-run]

Resumable as `sparse_teacher_grid.py` is: a step whose output exists is not run again. Logs:
OUT/logs/STEP.log, wall seconds per step: OUT/steps.jsonl, the pair tables: OUT/matched-*.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness.steps import JAXIR, Step, module, run_plan

MODES = ("idf_aware", "uniform")


def run_name(mode: str, lam: str) -> str:
    return f"{mode}-{lam}"


def plan(data: Path, out: Path, lambdas: dict[str, list[str]]) -> list[Step]:
    mode_flag = "cpu-nfcorpus" if "nfcorpus" in data.name else "cpu-scifact"
    steps = []
    for mode, values in lambdas.items():
        for lam in values:
            name = run_name(mode, lam)
            steps.append(Step(name, JAXIR + ["train", "--recipe", "sparse", "--mode", mode_flag, "--data", str(data),
                                             "--out", str(out / name), "--model.flops_mode", mode,
                                             "--model.flops_lambda", lam],
                              out / name / "sparse" / "model.json"))
            index = out / "indexes" / f"{name}-w1"
            steps.append(Step(f"{name}-index", JAXIR + ["index", "--method", "sparse", "--checkpoint",
                                                        str(out / name / "sparse"), "--data", str(data),
                                                        "--doc-windows", "1", "--out", str(index)],
                              index / "manifest.json", after=[name]))
    table = out / "matched.md"
    steps.append(Step("matched", module("benchmarks.claims.flops_modes") + [
                          "--data", str(data), "--out", str(out), "--report",
                          *[a for m, v in lambdas.items() for a in ("--lambdas", f"{m}={','.join(v)}")]],
                      table, stdout=table, after=[s.name for s in steps if s.name.endswith("-index")]))
    return steps


def nearest_pairs(nnz: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
    """(IDF-aware lambda, uniform lambda) for each IDF-aware run: the uniform run nearest to it in
    non-zeros per document, on a log scale. nnz: {(mode, lambda): nnz/doc}."""
    import math

    uniform = [lam for mode, lam in nnz if mode == "uniform"]
    return [(lam, min(uniform, key=lambda u: abs(math.log(nnz[("uniform", u)] / value))))
            for (mode, lam), value in nnz.items() if mode == "idf_aware" and uniform]


def report(data: Path, out: Path, lambdas: dict[str, list[str]]) -> None:
    """Pair each IDF-aware index with the uniform one nearest in nnz/doc; one matched table each."""
    import subprocess

    import numpy as np

    from jaxir.index.sparse_search import SparseIndex
    from jaxir.text import load_tokenizer

    nnz, tok = {}, load_tokenizer()
    for mode, values in lambdas.items():
        for lam in values:
            folder = out / "indexes" / f"{run_name(mode, lam)}-w1"
            nnz[(mode, lam)] = float(np.mean(SparseIndex.load(folder, tokenizer=tok).inverted.nonzeros_per_doc()))
    print("| run | lambda_d | nnz/doc (one window) |\n|---|---|---|")
    for (mode, lam), value in nnz.items():
        print(f"| {mode} | {lam} | {value:.1f} |")
    for lam, partner in nearest_pairs(nnz):
        mine = nnz[("idf_aware", lam)]
        print(f"\n### IDF-aware lambda {lam} ({mine:.1f} nnz/doc) against uniform lambda {partner} "
              f"({nnz[('uniform', partner)]:.1f})\n", flush=True)
        subprocess.run(module("benchmarks.claims.sparse_matched") + [
                           "--data", str(data),
                           *[a for m, v in (("idf_aware", lam), ("uniform", partner))
                             for a in ("--index", f"{m} lambda {v}={out / 'indexes' / f'{run_name(m, v)}-w1'}")]],
                       check=True, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="BEIR folder (scifact or nfcorpus)")
    ap.add_argument("--lambdas", action="append", required=True, help="MODE=L1,L2[,L3] (repeat per mode)")
    ap.add_argument("--out", type=Path, default=None, help="default: runs/flops-<dataset>")
    ap.add_argument("--dry-run", action="store_true", help="print the steps still to run, run nothing")
    ap.add_argument("--report", action="store_true", help=argparse.SUPPRESS)  # the last step, run by the plan
    args = ap.parse_args()
    lambdas = {}
    for spec in args.lambdas:
        mode, _, values = spec.partition("=")
        if mode not in MODES or not values:
            sys.exit(f"--lambdas {spec!r}: give MODE=L1,L2 with MODE one of {MODES}")
        lambdas[mode] = [v for v in values.split(",") if v]
        if len(lambdas[mode]) > 3:
            sys.exit(f"--lambdas {spec!r}: at most three configurations per mode")
    out = (args.out or ROOT / "runs" / f"flops-{args.data.name}").resolve()
    if args.report:
        return report(args.data.resolve(), out, lambdas)
    run_plan(plan(args.data.resolve(), out, lambdas), out, args.dry_run)

if __name__ == "__main__":
    main()
