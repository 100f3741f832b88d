"""Interpolate a reranker's alpha = 1 run with its first stage's run, as `jaxir eval --alpha A`
does (alpha * minmax(reranker) + (1 - alpha) * minmax(first stage) over each query's reranked
candidates), so another alpha costs no rescoring. The reranked run must hold exactly the first
stage's candidates per query (eval with --k equal to --depth); the interpolation is the library's
own (`jaxir.methods.cross_encoder.interpolate`).

    python -m benchmarks.claims.interpolate_runs --reranked runs/results/ce.scifact.d100.trec \\
        --first-stage runs/results/bm25.scifact.k100.trec --alpha 0.5 \\
        --data ../shared/data/beir/scifact --run runs/results/ce.a05.scifact.d100.trec
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def interpolate_runs(reranked: dict, first: dict, alpha: float) -> dict:
    from jaxir.methods.cross_encoder import interpolate

    out = {}
    for qid, docs in reranked.items():
        if set(docs) != set(first.get(qid, {})):
            raise ValueError(f"query {qid}: the reranked run and the first stage hold different candidates")
        ids = sorted(docs)
        mixed = interpolate(np.array([docs[d] for d in ids]), np.array([first[qid][d] for d in ids]), alpha)
        out[qid] = {d: float(s) for d, s in zip(ids, mixed)}
    return out


def main() -> None:
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.runs import read_trec, write_trec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reranked", required=True, help="TREC run of the reranker alone (alpha 1)")
    ap.add_argument("--first-stage", required=True, help="TREC run of the first stage (k = depth)")
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--run", help="write the interpolated run here")
    args = ap.parse_args()
    run = interpolate_runs(read_trec(args.reranked), read_trec(args.first_stage), args.alpha)
    metrics = evaluate(run, load_beir(args.data, split=args.split).qrels,
                       metrics=("ndcg@10", "mrr@10", "recall@100"))
    if args.run:
        write_trec(args.run, run, tag=f"interpolated-a{args.alpha:g}")
    print(json.dumps({"alpha": args.alpha, **{m: round(float(v), 4) for m, v in metrics.items()}}))


if __name__ == "__main__":
    main()
