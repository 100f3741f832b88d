"""Does an untrained I³ start from the plain dual encoder? And which loss term drives the passage
tower at step 0? (issue 36's init check, before/after the reference's set-up)

For each variant, on real MiniLM weights and real texts:
  - cosine of its passage vectors to the plain encoder's, over a pool of test documents
    (BM25 top-`depth` + the judged positives of the first `queries` test queries);
  - nDCG@10 of each of those queries re-ranking the whole pool (pytrec_eval semantics, jaxir.eval);
  - at init, the L2 norm of the passage tower's gradient from alpha * rank and from beta * rec
    on one batch of 8 train queries x (positive + 3 BM25 negatives), dropout off.

Variants: "plain" (no interaction), "before" (the interactor a copy of the last layer, alpha = beta
= 0.1: the earlier recipe, with today's reconstruction labels), "after" (zero-residual interactor,
alpha = 1, beta = 0.1 in the first pass: the reference's set-up).

    python -m benchmarks.claims.i3_init_check --data ../shared/data/beir/scifact --out runs/results/i3-init.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

VARIANTS = {
    "plain": {"implicit_interaction": False},
    "before": {"interactor_init": "last-layer", "contrastive_weight": 0.1, "reconstruction_weight": 0.1},
    "after": {},
}


def pool_of(test, queries: int, depth: int):
    """(qids, pooled doc ids): BM25 top-depth + judged positives of the first `queries` test queries."""
    from jaxir.index.bm25 import BM25Index

    bm25 = BM25Index.build(test.doc_texts(), doc_ids=test.doc_ids)
    qids = list(test.qrels)[:queries]
    pool: dict[str, None] = {}
    for qid in qids:
        for d in bm25.search(test.queries[qid], depth)[0]:
            pool.setdefault(d)
        for d, g in test.qrels[qid].items():
            if g > 0:
                pool.setdefault(d)
    return qids, list(pool)


def train_batch(train, model, n: int = 8, negatives: int = 3):
    """One batch: n train queries, each its first positive + BM25's top non-positive `negatives`."""
    from jaxir.index.bm25 import BM25Index
    from jaxir.recipes.i3 import i3_arrays

    bm25 = BM25Index.build(train.doc_texts(), doc_ids=train.doc_ids)
    qids = [q for q in train.qrels if any(g > 0 for g in train.qrels[q].values())][:n]
    docs = []
    for qid in qids:
        pos = [d for d, g in train.qrels[qid].items() if g > 0]
        negs = [d for d in bm25.search(train.queries[qid], 30)[0] if d not in pos][:negatives]
        docs.append([train.text_of(d) for d in [pos[0], *negs]])
    return i3_arrays(model, [train.queries[q] for q in qids], docs)


def tower_grad_norms(model, params, batch) -> dict:
    """|d(alpha * rank)/d passage| and |d(beta * rec)/d passage| at update 0, dropout off."""
    from jaxir.training.grad_shares import gradient_shares

    def aux(p):
        return model.loss_fn(p, batch)[1]
    return gradient_shares({"alpha_rank": lambda p: aux(p)["rank"],
                            "beta_rec": lambda p: aux(p)["beta"] * aux(p)["rec"]}, params, "passage")


def main(argv=None) -> dict:
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.methods.i3 import I3Model
    from jaxir.methods.i3_config import I3Config
    from jaxir.models.hf import load_bert

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="BEIR folder (test split: the pool; train: the batch)")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--depth", type=int, default=15)
    ap.add_argument("--doc-maxlen", type=int, default=256)
    ap.add_argument("--out", help="JSON results file")
    args = ap.parse_args(argv)

    test, train = load_beir(args.data, split="test"), load_beir(args.data, split="train")
    qids, pool = pool_of(test, args.queries, args.depth)
    texts = [test.text_of(d) for d in pool]
    bert_config, bert_params = load_bert(None)
    vectors, out = {}, {"pool_docs": len(pool), "queries": len(qids)}
    for name, fields in VARIANTS.items():
        model = I3Model(I3Config(doc_maxlen=args.doc_maxlen, **fields), bert_config=bert_config,
                        bert_params=bert_params)
        params = model.init(jax.random.PRNGKey(0))
        vectors[name] = model.encode_passage_texts(params, texts, progress=False)
        q = model.encode_query_texts(params, [test.queries[x] for x in qids], progress=False)
        scores = q @ vectors[name].T
        run = {qid: {d: float(s) for d, s in zip(pool, row)} for qid, row in zip(qids, scores)}
        row = {"ndcg@10": evaluate(run, {x: test.qrels[x] for x in qids}, metrics=["ndcg@10"])["ndcg@10"]}
        cos = np.sum(vectors[name] * vectors["plain"], axis=1)  # unit vectors
        row.update(cos_to_plain_mean=float(cos.mean()), cos_to_plain_min=float(cos.min()))
        row.update(tower_grad_norms(model, params, train_batch(train, model)))
        out[name] = row
        print(name, json.dumps(row))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
