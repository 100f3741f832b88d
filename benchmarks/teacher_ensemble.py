"""How good is the learned-sparse recipe's teacher? The min-max ensemble of dense MiniLM and BM25
scored as a retriever on a BEIR test split (candidates: union of each teacher's top `depth`).

The recipe's student distils exactly this score (`jaxir.ops.scores.ensemble_teacher_scores`,
per-query min-max over the candidates, weighted mean), so its nDCG@10 is what perfect distillation
would reach on these candidates. Weights are (dense, BM25); (1, 0) and (0, 1) are the teachers alone.

    python benchmarks/teacher_ensemble.py --data ../shared/data/beir/scifact \
        --dense-index runs/indexes/scifact-dense --weights 1,0 0,1 1,1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import jax.numpy as jnp

    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.index.bm25 import BM25Index
    from jaxir.methods.dense import DenseRetriever
    from jaxir.ops.scores import ensemble_teacher_scores
    from jaxir.recipes.sparse import dense_corpus

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--dense-index", help="`jaxir index --method dense` folder (default: encode now)")
    ap.add_argument("--weights", nargs="+", default=["1,0", "0,1", "1,1"])
    ap.add_argument("--depth", type=int, default=100)
    args = ap.parse_args()

    data = load_beir(args.data, split="test")
    bm25 = BM25Index.build(data.doc_texts(), doc_ids=list(data.doc_ids))
    dense = DenseRetriever()
    flat = dense_corpus(data, dense, args.dense_index)
    qids = list(data.qrels)
    q_emb = dense.encode([data.queries[q] for q in qids], what="query", progress=False)
    d_ids, _ = flat.search(q_emb, args.depth)
    dense_row = {d: i for i, d in enumerate(flat.doc_ids.tolist())}
    bm25_row = {d: i for i, d in enumerate(bm25.doc_ids.tolist())}
    runs = {w: {} for w in args.weights}
    for qid, emb, dense_top in zip(qids, q_emb, d_ids):
        b_top, _ = bm25.search(data.queries[qid], args.depth)
        cand = list(dict.fromkeys([*b_top, *dense_top]))
        per_teacher = [np.asarray(flat.embeddings[[dense_row[d] for d in cand]], np.float32) @ emb,
                       bm25.score_all(data.queries[qid])[[bm25_row[d] for d in cand]]]
        for w in args.weights:
            s = ensemble_teacher_scores([jnp.asarray(t[None]) for t in per_teacher],
                                        weights=[float(x) for x in w.split(",")], scale=1.0)
            runs[w][qid] = dict(zip(cand, np.asarray(s[0]).tolist()))
    print(f"{data.name} test, {len(qids)} queries, candidates = BM25 top-{args.depth} U dense top-{args.depth}")
    for w, run in runs.items():
        m = evaluate(run, data.qrels, metrics=["ndcg@10", "recall@100"])
        print(f"weights (dense, BM25) {w:>5}: nDCG@10 {m['ndcg@10']:.4f}   Recall@100 {m['recall@100']:.4f}")


if __name__ == "__main__":
    main()
