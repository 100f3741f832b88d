"""The BM25 lexical prior alone over a k1 x b grid, scored on train and test queries (NumPy only).

The prior has no learned part, so every train query is fair for choosing k1 and b: the test
column is shown only to see whether the choice carries over. Queries keep the index's IDF
weights; documents get the prior of `jaxir.methods.lexical_prior` (with `--stem`, the stemmed one
of `jaxir.methods.stem_classes`), avgdl of this corpus.

    python -m benchmarks.claims.sparse_prior_params --data ../shared/data/beir/scifact \
        --index runs/indexes/scifact-sparse-prior-w1 --k1 0.6,0.9,1.2,1.5,2,3 --b 0.3,0.5,0.75,0.9,1
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    from benchmarks.claims.sparse_matched import measure
    from jaxir.eval.beir import load_beir
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.methods.lexical_prior import LexicalPrior
    from jaxir.methods.stem_classes import StemClasses
    from jaxir.text import load_tokenizer, tokenize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True, help="any sparse index of this corpus (its IDF)")
    ap.add_argument("--k1", default="0.9,1.2,1.5,2")
    ap.add_argument("--b", default="0.5,0.75,0.9")
    ap.add_argument("--stem", action="store_true", help="the stemmed prior")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # queries without a scoring term warn per call
    tok = load_tokenizer()
    test, train = load_beir(args.data, "test"), load_beir(args.data, "train")
    ref = SparseIndex.load(args.index, tokenizer=tok)
    if ref.doc_ids.tolist() != test.doc_ids:
        raise SystemExit(f"{args.index} does not index the {test.name} corpus in file order")
    tokens = tokenize(tok, test.doc_texts(), what="document")
    scoring = np.flatnonzero(ref.idf > 0)
    stems = StemClasses.from_tokenizer(tok, skip_ids=ref.skip_ids) if args.stem else None
    print(f"{test.name}; prior{' (stemmed)' if args.stem else ''} alone; train: {len(train.queries)} "
          f"queries, test: {len(test.queries)}")
    print("| k1 | b | train nDCG@10 | test nDCG@10 |\n|---|---|---|---|")
    best = (-1.0, None)
    for k1 in [float(x) for x in args.k1.split(",")]:
        for b in [float(x) for x in args.b.split(",")]:
            prior = LexicalPrior.fit(tokens, k1=k1, b=b, stems=stems)
            vectors = [prior.vector(t, skip_ids=ref.skip_ids, keep_ids=scoring) for t in tokens]
            built = SparseIndex.build(vectors, doc_ids=test.doc_ids, idf=ref.idf, tokenizer=tok,
                                      skip_ids=ref.skip_ids, dtype="float32")
            index = SparseIndex(built.inverted, built.doc_ids, built.idf, built.skip_ids, tok, built.meta)
            on_train = measure(index, train.queries, train.qrels)["ndcg@10"]
            on_test = measure(index, test.queries, test.qrels)["ndcg@10"]
            best = max(best, (on_train, (k1, b)))
            print(f"| {k1:g} | {b:g} | {on_train:.4f} | {on_test:.4f} |", flush=True)
    print(f"chosen on the train queries: k1 {best[1][0]:g}, b {best[1][1]:g}")


if __name__ == "__main__":
    main()
