"""The sparse paper's teacher grid (issue 18, item 4), one dataset per call, resumable.

Teachers: a plain dual encoder (`--recipe i3 --model.implicit_interaction false`, the dense siamese
retriever) and SPLADE (`--recipe splade`, the siamese learned-sparse one). Students: the
inference-free model distilled from
- both teachers (min-max per query, equal weights), IDF-aware and uniform FLOPS;
- each teacher alone;
- today's MiniLM + BM25 teachers, IDF-aware and uniform FLOPS;
all without the lexical prior; then the ensemble and MiniLM + BM25 with it (indexed as today's prior
model: `--head-scale 0.25 --prior-stem true`). Each student is indexed with one document window and
the groups are compared at matched sparsity by `sparse_matched.py` (paired p against the first row).
Each teacher and each pair's min-max ensemble (`teacher_ensemble.py`) is scored on the test split too.

    python -m benchmarks.claims.sparse_teacher_grid --data ../shared/data/beir/scifact [--out runs/grid-scifact]
        [--only plain,splade,ens-idf,...] [--dry-run]

Every step is a command whose output is checked before it runs, so a killed grid resumes where it
stopped. The plain teacher (the longest run: about 50 min on NFCorpus) checkpoints every 50 steps and
resumes bit-exactly from the last one; the sparse runs restart, because their held-out selection
keeps the best params in memory. Logs: OUT/logs/STEP.log; wall
seconds per step: OUT/steps.jsonl. `--mode cpu-scifact` or `cpu-nfcorpus`, chosen by the dataset's
name, gives every run the budget of the earlier runs of its recipe: the sparse students and SPLADE
200 steps on SciFact, 100 on NFCorpus; the plain dense teacher the I3 recipe's 300 steps on both.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness.steps import JAXIR, Step, add_plan_options, module, run_plan, select

PRIOR_INDEX = ["--head-scale", "0.25", "--prior-stem", "true"]


@dataclass(frozen=True)
class Student:
    name: str
    label: str
    teachers: tuple[str, ...] = ()  # "plain" / "splade" (this grid's teachers); () = the recipe default
    flops: str = "idf_aware"
    prior: bool = False


STUDENTS = (
    Student("ens-idf", "ensemble {plain dense, SPLADE}, IDF-aware", ("plain", "splade")),
    Student("dense-idf", "plain dense teacher only, IDF-aware", ("plain",)),
    Student("splade-idf", "SPLADE teacher only, IDF-aware", ("splade",)),
    Student("minilm-bm25-idf", "MiniLM + BM25 (earlier default), IDF-aware"),
    Student("ens-uniform", "ensemble {plain dense, SPLADE}, uniform FLOPS", ("plain", "splade"), "uniform"),
    Student("minilm-bm25-uniform", "MiniLM + BM25, uniform FLOPS", (), "uniform"),
    Student("ens-idf-prior", "ensemble {plain dense, SPLADE}, lexical prior", ("plain", "splade"), prior=True),
    Student("minilm-bm25-idf-prior", "MiniLM + BM25, lexical prior (earlier default)", (), prior=True),
)


def plan(data: Path, out: Path) -> list[Step]:
    mode = "cpu-nfcorpus" if "nfcorpus" in data.name else "cpu-scifact"
    common = ["--mode", mode, "--data", str(data)]
    ckpt = {"plain": out / "plain" / "i3", "splade": out / "splade" / "splade"}
    method = {"plain": "i3", "splade": "splade"}
    steps = [
        Step("plain", JAXIR + ["train", "--recipe", "i3", *common, "--out", str(out / "plain"),
                               "--model.implicit_interaction", "false", "--fit.checkpoint_every", "50"],
             ckpt["plain"] / "model.json"),
        Step("splade", JAXIR + ["train", "--recipe", "splade", *common, "--out", str(out / "splade")],
             ckpt["splade"] / "model.json"),
    ]
    for t in ("plain", "splade"):
        run = out / t / "test.trec"
        steps.append(Step(f"{t}-eval", JAXIR + ["eval", "--method", method[t], "--checkpoint", str(ckpt[t]),
                                                "--data", str(data), "--run", str(run)],
                          out / t / "test-eval.txt", stdout=out / t / "test-eval.txt", after=[t]))
    # Each teacher pair's min-max ensemble on the test split: what perfect distillation would reach.
    ensemble = module("benchmarks.claims.teacher_ensemble") + ["--data", str(data)]
    for name, teachers, after in (
            ("teachers-ensemble", [f"{method[t]}:{ckpt[t]}" for t in ("plain", "splade")], ["plain", "splade"]),
            ("minilm-bm25-ensemble", [], [])):
        table = out / f"{name}.txt"
        steps.append(Step(name, ensemble + (["--teachers", *teachers] if teachers else []), table,
                          stdout=table, after=after))
    for s in STUDENTS:
        argv = JAXIR + ["train", "--recipe", "sparse", *common, "--out", str(out / s.name),
                        "--model.flops_mode", s.flops]
        if s.teachers:
            argv += ["--data.teachers", ",".join(f"{method[t]}:{ckpt[t]}" for t in s.teachers),
                     "--model.teacher_weights", ",".join("1" for _ in s.teachers)]
        if s.prior:
            argv += ["--model.lexical_prior", "true"]
        steps.append(Step(s.name, argv, out / s.name / "sparse" / "model.json", after=list(s.teachers)))
        index = out / "indexes" / f"{s.name}-w1"
        steps.append(Step(f"{s.name}-index", JAXIR + [
            "index", "--method", "sparse", "--checkpoint", str(out / s.name / "sparse"), "--data", str(data),
            "--doc-windows", "1", *(PRIOR_INDEX if s.prior else []), "--out", str(index)],
            index / "manifest.json", after=[s.name]))
    for group, min_idf in (("no-prior", 0.0), ("prior", 0.5)):
        members = [s for s in STUDENTS if s.prior == (group == "prior")]
        table = out / f"matched-{group}.md"
        steps.append(Step(f"matched-{group}", module("benchmarks.claims.sparse_matched") + [
            "--data", str(data), "--min-idf", str(min_idf),
            *[a for s in members for a in ("--index", f"{s.label}={out / 'indexes' / f'{s.name}-w1'}")]],
            table, stdout=table, after=[f"{s.name}-index" for s in members]))
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="BEIR folder (scifact or nfcorpus)")
    ap.add_argument("--out", type=Path, default=None, help="default: runs/grid-<dataset>")
    add_plan_options(ap)
    args = ap.parse_args()
    out = (args.out or ROOT / "runs" / f"grid-{args.data.name}").resolve()
    steps = plan(args.data.resolve(), out)
    run_plan(select(steps, args.only), out, args.dry_run)


if __name__ == "__main__":
    main()
