"""How good is a learned-sparse student's teacher? The min-max ensemble of any first-stage teachers
(the recipe's `--data.teachers` specs: "dense", "bm25", "i3:CKPT", "splade:CKPT", ...) scored as a
retriever on a BEIR test split; candidates are the union of each teacher's top `depth`.

The recipe's student distils exactly this score (`jaxir.ops.scores.ensemble_teacher_scores`,
per-query min-max over the candidates, weighted mean), so its nDCG@10 is what perfect distillation
would reach on these candidates. `--weights` lists one weight per teacher for each ensemble to
score; "1,0" and "0,1" are the teachers alone. A sparse teacher's candidates are the documents it
retrieves (those sharing a term with the query), not zero-scored ones.

    python -m benchmarks.claims.teacher_ensemble --data ../shared/data/beir/scifact --weights 1,0 0,1 1,1
    python -m benchmarks.claims.teacher_ensemble --data ../shared/data/beir/scifact \
        --teachers i3:runs/grid-scifact/plain/i3 splade:runs/grid-scifact/splade/splade
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def candidates(rows: list[np.ndarray], depth: int) -> np.ndarray:
    """Column ids: the union of each teacher's top `depth` non-zero columns of one query's score
    rows (a teacher's zeros are documents it did not retrieve), in teacher then rank order."""
    picks = []
    for row in rows:
        top = np.argsort(-row, kind="stable")[:depth]
        picks.extend(top[row[top] != 0].tolist())
    return np.asarray(list(dict.fromkeys(picks)), np.int64)


def ensemble_runs(matrices: list[np.ndarray], doc_ids, qids, weights: list[list[float]],
                  depth: int) -> list[dict]:
    """One run {qid: {doc_id: score}} per weight vector: the min-max ensemble of the teachers'
    [Q, N] score matrices over each query's candidates."""
    import jax.numpy as jnp

    from jaxir.ops.scores import ensemble_teacher_scores

    runs = [{} for _ in weights]
    for i, qid in enumerate(qids):
        cand = candidates([m[i] for m in matrices], depth)
        per_teacher = [jnp.asarray(m[i, cand][None]) for m in matrices]
        ids = [doc_ids[j] for j in cand]
        for run, w in zip(runs, weights):
            s = ensemble_teacher_scores(per_teacher, weights=w, scale=1.0)
            run[qid] = dict(zip(ids, np.asarray(s[0]).tolist()))
    return runs


def arguments(argv=None) -> argparse.Namespace:
    """The command line, with `weights` as one float list per ensemble (checked against the teachers)."""
    from jaxir.recipes.sparse_teachers import DEFAULT_TEACHERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--teachers", nargs="+", default=list(DEFAULT_TEACHERS),
                    help="teacher specs, METHOD or METHOD:CHECKPOINT (default: dense bm25)")
    ap.add_argument("--weights", nargs="+", default=None,
                    help="one comma list per ensemble (default: each teacher alone, then equal weights)")
    ap.add_argument("--depth", type=int, default=100)
    args = ap.parse_args(argv)
    n = len(args.teachers)
    args.weights = ([[float(x) for x in w.split(",")] for w in args.weights] if args.weights else
                    [[float(i == j) for j in range(n)] for i in range(n)] + [[1.0] * n])
    bad = [w for w in args.weights if len(w) != n]
    if bad:
        ap.error(f"--weights: each needs {n} values (one per teacher), got {bad}")
    return args


def main() -> None:
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.recipes.sparse_teachers import corpus_scores

    args = arguments()
    data = load_beir(args.data, split="test")
    qids = list(data.qrels)
    queries = [data.queries[q] for q in qids]
    matrices = [corpus_scores(spec, data, queries) for spec in args.teachers]
    runs = ensemble_runs(matrices, list(data.doc_ids), qids, args.weights, args.depth)
    print(f"{data.name} test, {len(qids)} queries, candidates = union of each teacher's top-{args.depth}")
    print(f"teachers: {', '.join(args.teachers)}")
    for w, run in zip(args.weights, runs):
        m = evaluate(run, data.qrels, metrics=["ndcg@10", "recall@100"])
        label = ",".join(f"{x:g}" for x in w)
        print(f"weights {label:>7}: nDCG@10 {m['ndcg@10']:.4f}   Recall@100 {m['recall@100']:.4f}")


if __name__ == "__main__":
    main()
