"""Add a BM25 lexical prior to a trained learned-sparse index after the fact (NumPy only, no model).

For each beta, documents get w = prior + beta * w_index, where prior is the BM25 tf-saturation of
the whole document's WordPieces (`jaxir.methods.lexical_prior`, k1 1.5, b 0.75, avgdl of this
corpus), and queries keep the index's IDF weights. beta 0 is BM25 over WordPieces; the last row is
the index alone. This asks whether a head trained without the prior complements exact matching
when the two are summed; training with the prior in the loss (`--lexical-prior true`) is the
other route.

    python benchmarks/sparse_prior_fusion.py --data ../shared/data/beir/scifact \
        --index runs/indexes/scifact-sparse-r3 --beta 0,0.25,0.5,1,2
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np


def index_vectors(inverted) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-document (term ids, float weights) of an InvertedIndex, doc order."""
    terms = np.repeat(np.arange(inverted.vocab_size), np.diff(inverted.offsets))
    docs = np.asarray(inverted.postings, np.int64)
    weights = np.asarray(inverted.weights, np.float64) * inverted.scale
    order = np.lexsort((terms, docs))
    bounds = np.searchsorted(docs[order], np.arange(inverted.n_docs + 1))
    return [(terms[order[a:b]], weights[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])]


def main() -> None:
    from jaxir.eval.beir import load_beir
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.methods.lexical_prior import LexicalPrior, add_vectors
    from jaxir.text import load_tokenizer, tokenize
    from sparse_matched import measure  # same folder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--beta", default="0,0.25,0.5,1,2")
    ap.add_argument("--min-idf", type=float, default=0.0, help="drop query terms with idf <= this")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # queries without a scoring term warn per call
    data, tok = load_beir(args.data, "test"), load_tokenizer()
    trained = SparseIndex.load(args.index, tokenizer=tok, min_idf=args.min_idf)
    if trained.doc_ids.tolist() != data.doc_ids:
        raise SystemExit(f"{args.index} does not index the {data.name} corpus in file order")
    tokens = tokenize(tok, data.doc_texts(), what="document")
    prior = LexicalPrior.fit(tokens)
    scoring = np.flatnonzero(trained.idf > 0)
    priors = [prior.vector(t, skip_ids=trained.skip_ids, keep_ids=scoring) for t in tokens]
    head = index_vectors(trained.inverted)
    print(f"{data.name} test, {len(data.queries)} queries; prior avgdl {prior.avgdl:.1f} WordPieces; "
          f"min_idf {args.min_idf}")
    print("| documents | nDCG@10 | nnz/doc | postings/query |")
    print("|---|---|---|---|")
    for beta in [float(b) for b in args.beta.split(",")]:
        vectors = [add_vectors(p, (t, beta * w)) for p, (t, w) in zip(priors, head)]
        built = SparseIndex.build(vectors, doc_ids=data.doc_ids, idf=trained.idf, tokenizer=tok,
                                  skip_ids=trained.skip_ids, dtype="float32")
        index = SparseIndex(built.inverted, built.doc_ids, built.idf, built.skip_ids, tok, built.meta,
                            min_idf=args.min_idf)
        m = measure(index, data.queries, data.qrels)
        print(f"| prior + {beta:g} × index | {m['ndcg@10']:.4f} | {m['nnz/doc']:.1f} | {m['postings/query']:.0f} |")
    m = measure(trained, data.queries, data.qrels)
    print(f"| index alone | {m['ndcg@10']:.4f} | {m['nnz/doc']:.1f} | {m['postings/query']:.0f} |")


if __name__ == "__main__":
    main()
