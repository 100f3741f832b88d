"""Learned-sparse indexes side by side, as built and at matched sparsity (NumPy only, no model).

For each index: test nDCG@10, non-zeros per document, postings read per query and the median
search time per query (top 100, one thread, this process). Then every
index is cut to the same number of postings (the smallest index's; one global weight threshold
per index, `InvertedIndex.keep_largest`) and measured again, so ablations that end at different
sparsity (e.g. IDF-aware vs uniform FLOPS) are compared at equal cost. At that cut each index is
compared with the first one: the mean per-query nDCG@10 difference and its two-sided p from a paired
randomization test (10,000 sign flips, `jaxir.eval.significance`). `--min-idf` drops query terms
with idf <= the value for every index (as `jaxir eval --min-idf`).

    python -m benchmarks.claims.sparse_matched --data ../shared/data/beir/scifact \
        --index ensemble=runs/indexes/scifact-sparse-r1 --index dense=runs/indexes/scifact-sparse-dense
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np


def measure(index, queries: dict[str, str], qrels, k: int = 10) -> dict:
    from jaxir.eval.metrics import evaluate

    run, seconds = {}, []
    for qid, text in queries.items():
        start = time.perf_counter()
        ids, scores = index.search(text, 100)
        seconds.append(time.perf_counter() - start)
        run[qid] = {d: float(s) for d, s in zip(ids, scores)}
    postings = [index.postings_touched(q) for q in queries.values()]
    means, per_query = evaluate(run, qrels, metrics=[f"ndcg@{k}"], per_query=True)
    return {"ndcg@10": means[f"ndcg@{k}"], "per_query": per_query,
            "nnz/doc": float(np.mean(index.inverted.nonzeros_per_doc())),
            "postings/query": float(np.mean(postings)), "ms/query": 1000 * float(np.median(seconds))}


def main() -> None:
    from jaxir.eval.beir import load_beir
    from jaxir.eval.significance import compare_per_query
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.text import load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--index", action="append", required=True, help="NAME=DIR (repeat)")
    ap.add_argument("--min-idf", type=float, default=0.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # queries without a scoring term warn per call
    data, tok = load_beir(args.data, "test"), load_tokenizer()
    indexes = {}
    for spec in args.index:
        name, folder = spec.split("=", 1)
        indexes[name] = SparseIndex.load(folder, tokenizer=tok, min_idf=args.min_idf)
    target = min(len(ix.inverted.postings) for ix in indexes.values())
    print(f"{data.name} test, {len(data.queries)} queries, min_idf {args.min_idf}; "
          f"matched: {target / len(data.doc_ids):.1f} non-zeros/doc")
    first = next(iter(indexes))
    print("| index | nDCG@10 | nnz/doc | postings/query | matched nDCG@10 | matched postings/query "
          f"| matched ms/query (median) | matched Δ vs {first} (p) |")
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    for name, ix in indexes.items():
        full = measure(ix, data.queries, data.qrels)
        ix.inverted = ix.inverted.keep_largest(target)
        cut = measure(ix, data.queries, data.qrels)
        reference = reference or cut["per_query"]
        diff, p = compare_per_query(cut["per_query"], reference, "ndcg@10")
        vs = "" if name == first else f"{diff:+.4f} (p {p:.4f})"
        print(f"| {name} | {full['ndcg@10']:.4f} | {full['nnz/doc']:.1f} | {full['postings/query']:.0f} | "
              f"{cut['ndcg@10']:.4f} | {cut['postings/query']:.0f} | {cut['ms/query']:.2f} | {vs} |")


if __name__ == "__main__":
    main()
