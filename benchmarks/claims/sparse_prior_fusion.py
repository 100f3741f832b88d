"""How much of a learned-sparse head to add to the BM25 lexical prior (NumPy only, no model).

For each beta, documents get w = prior + beta * head, where prior is the BM25 tf-saturation of
the whole document's WordPieces (`jaxir.methods.lexical_prior`, k1 1.5, b 0.75) and queries keep
the index's IDF weights. For an index built without a prior the head is the whole index (the
prior added after training, avgdl of this corpus); for one trained with `--model.lexical_prior
true` the head is the index minus its prior (avgdl from the index). beta 0 is BM25 over
WordPieces. With `--stem` the head is added to the stemmed prior (`jaxir index --prior-stem true`)
instead.

With `--holdout <run>/holdout.json` (written by `jaxir train --recipe sparse`) each beta is also
scored on those held-out train queries (never trained on) over the full corpus, and the beta that
ranks them best is the one to index with (`jaxir index --head-scale BETA`): chosen without the test
queries.

    python -m benchmarks.claims.sparse_prior_fusion --data ../shared/data/beir/scifact \
        --index runs/indexes/scifact-sparse-prior-w1 --holdout runs/sparse-prior/holdout.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
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
    from benchmarks.claims.sparse_matched import measure
    from jaxir.eval.beir import load_beir
    from jaxir.eval.significance import compare_per_query
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.methods.lexical_prior import LexicalPrior, add_vectors
    from jaxir.methods.stem_classes import StemClasses
    from jaxir.text import load_tokenizer, tokenize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--beta", default="0,0.25,0.5,0.75,1,1.5")
    ap.add_argument("--holdout", type=Path, help="holdout.json of the training run")
    ap.add_argument("--min-idf", type=float, default=0.0, help="drop query terms with idf <= this")
    ap.add_argument("--plot", type=Path, help="write nDCG@10 against beta to this PNG")
    ap.add_argument("--stem", action="store_true",
                    help="add the head to a stemmed prior (jaxir.methods.stem_classes), whatever the index used")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # queries without a scoring term warn per call
    data, tok = load_beir(args.data, "test"), load_tokenizer()
    splits = {"test": (data.queries, data.qrels)}
    if args.holdout:
        held = json.loads(args.holdout.read_text())["query_ids"]
        train = load_beir(args.data, "train")
        splits["held-out train"] = ({q: train.queries[q] for q in held}, {q: train.qrels[q] for q in held})
    trained = SparseIndex.load(args.index, tokenizer=tok, min_idf=args.min_idf)
    if trained.doc_ids.tolist() != data.doc_ids:
        raise SystemExit(f"{args.index} does not index the {data.name} corpus in file order")
    tokens = tokenize(tok, data.doc_texts(), what="document")
    built_with = trained.meta.get("prior_avgdl")
    # The index's own prior; indexes from before k1/b/weight were recorded used the defaults.
    built_stemmed = bool(trained.meta.get("prior_stem"))
    classes = (StemClasses.from_tokenizer(tok, skip_ids=trained.skip_ids)
               if args.stem or built_stemmed else None)  # built once, used by either prior
    prior = (LexicalPrior(avgdl=built_with, **{k: trained.meta[f"prior_{k}"] for k in ("k1", "b", "weight")
                                               if trained.meta.get(f"prior_{k}") is not None})
             if built_with else LexicalPrior.fit(tokens))
    own = dataclasses.replace(prior, stems=classes if built_stemmed else None)  # the prior inside the index
    prior = dataclasses.replace(prior, stems=classes if args.stem else None)  # the prior the head is added to
    scoring = np.flatnonzero(trained.idf > 0)
    priors = [prior.vector(t, skip_ids=trained.skip_ids, keep_ids=scoring) for t in tokens]
    head = index_vectors(trained.inverted)
    if built_with:  # the head's part = index - its prior (clipped: uint8 rounding can leave -0.00x)
        owns = priors if built_stemmed == args.stem else [
            own.vector(t, skip_ids=trained.skip_ids, keep_ids=scoring) for t in tokens]
        head = [add_vectors(h, (p[0], -p[1])) for h, p in zip(head, owns)]
        head = [(t, np.maximum(w, 0.0)) for t, w in head]
    print(f"{data.name}; prior avgdl {prior.avgdl:.1f} WordPieces{', stemmed' if args.stem else ''} ({'from the index' if built_with else 'fitted'}); "
          f"min_idf {args.min_idf}; " + ", ".join(f"{k}: {len(q)} queries" for k, (q, _) in splits.items()))
    print("| documents | " + " | ".join(f"{k} nDCG@10" for k in splits)
          + " | test Δ vs prior alone (p) | nnz/doc | test postings/query |")
    print("|---" * (len(splits) + 4) + "|")
    prior_alone = None
    best, curves = {}, {k: [] for k in splits}
    betas = [float(b) for b in args.beta.split(",")]
    for beta in betas:
        vectors = [add_vectors(p, (t, beta * w)) for p, (t, w) in zip(priors, head)]
        built = SparseIndex.build(vectors, doc_ids=data.doc_ids, idf=trained.idf, tokenizer=tok,
                                  skip_ids=trained.skip_ids, dtype="float32")
        index = SparseIndex(built.inverted, built.doc_ids, built.idf, built.skip_ids, tok, built.meta,
                            min_idf=args.min_idf)
        m = {k: measure(index, q, qrels) for k, (q, qrels) in splits.items()}
        for k in m:
            curves[k].append(m[k]["ndcg@10"])
            best.setdefault(k, (-1.0, None))
            best[k] = max(best[k], (m[k]["ndcg@10"], beta))
        if beta == 0:
            prior_alone = m["test"]["per_query"]
        versus = ""
        if prior_alone is not None and beta != 0:
            diff, p = compare_per_query(m["test"]["per_query"], prior_alone, "ndcg@10")
            versus = f"{diff:+.4f} (p {p:.4f})"
        print(f"| prior + {beta:g} × head | " + " | ".join(f"{m[k]['ndcg@10']:.4f}" for k in m)
              + f" | {versus} | {m['test']['nnz/doc']:.1f} | {m['test']['postings/query']:.0f} |", flush=True)
    m = measure(trained, data.queries, data.qrels)
    print(f"index as built: test nDCG@10 {m['ndcg@10']:.4f}, {m['nnz/doc']:.1f} nnz/doc")
    if "held-out train" in best:
        print(f"beta chosen on the held-out train queries: {best['held-out train'][1]:g}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for k, ys in curves.items():
            ax.plot(betas, ys, marker="o", label=f"{k} ({len(splits[k][0])} queries)")
        ax.set_xlabel("beta (weight of the head next to the BM25 prior)")
        ax.set_ylabel("nDCG@10")
        ax.set_title(f"{data.name}: {'stemmed ' if args.stem else ''}prior + beta x head")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
