"""BM25 latency: jaxir.index.bm25 vs bm25s, same process, same parameters, same analysis;
optionally our inference-free learned sparse index (`--sparse-index`) timed beside them.

Both systems: Lucene BM25, k1 1.5, b 0.75, bm25s's English stopwords, PyStemmer English stemming.
Single-query search over all test queries, interleaved (query by query, the order of the two
systems alternating), a few repeats; prints median / p99 latency per system, the ratio
ours / bm25s, index build times, and retrieval quality (ir-measures conventions, jaxir.eval).

Two timings: "text" = query string -> top-k doc ids (analysis included; bm25s.tokenize +
retrieve), "ids" = analyzed query -> top-k (ours from term ids, bm25s from token strings).
bm25s runs with its default top-k backend (JAX's top_k when JAX is installed, as here) and with
backend_selection="numpy"; the ratio is taken against the faster of the two.

With --sparse-index DIR (built by `jaxir index --method sparse --checkpoint CKPT`) the
learned-sparse searcher runs interleaved with the others: "text" = query string -> tokenizer ->
IDF weights -> top-k (no model), "ids" = weighted WordPieces -> top-k. It prints the ratios
learned-sparse / our BM25 and / bm25s, non-zeros per document and postings touched per query.

    python -m benchmarks.speed.bench_bm25 [--data ../shared/data/beir/scifact] [--repeats 5] [--k 10]
        [--build-repeats 3] [--sparse-index runs/indexes/scifact-sparse] [--sparse-min-idf 0]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("DISABLE_TQDM", "1")  # bm25s builds a tqdm bar per call otherwise
from benchmarks import BEIR  # noqa: E402

DEFAULT_DATA = BEIR / "scifact"


def load_scifact(folder: Path) -> tuple[list[str], list[str], dict[str, str], dict | None]:
    """(doc ids, doc texts, test queries {id: text}, qrels or None)."""
    try:
        from jaxir.eval.beir import load_beir
    except ImportError:  # fall back to reading the files directly
        with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
            docs = [json.loads(line) for line in f]
        with gzip.open(folder / "queries.jsonl.gz", "rt") as f:
            texts = {q["_id"]: q["text"] for q in map(json.loads, f)}
        rows = (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]
        test = dict.fromkeys(r.split("\t")[0] for r in rows)
        return ([d["_id"] for d in docs], [f"{d.get('title', '')} {d['text']}".strip() for d in docs],
                {q: texts[q] for q in test}, None)
    data = load_beir(folder, "test")
    return data.doc_ids, data.doc_texts(), data.queries, data.qrels


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def build_systems(doc_ids, texts, repeats: int):
    """Build both indexes `repeats` times, alternating; returns them and the median build times."""
    import bm25s
    import Stemmer

    from jaxir.index.bm25 import BM25Index

    stemmer = Stemmer.Stemmer("english")

    def build_ours():
        return BM25Index.build(texts, doc_ids=doc_ids, k1=1.5, b=0.75, method="lucene")

    def build_peer():
        peer = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        peer.index(tokens, show_progress=False)
        return peer

    t_ours, t_peer = [], []
    for _ in range(repeats):
        ours, t = timed(build_ours)
        t_ours.append(t)
        peer, t = timed(build_peer)
        t_peer.append(t)
    return ours, peer, stemmer, float(np.median(t_ours)), float(np.median(t_peer))


def make_searchers(ours, peer, stemmer, k):
    """name -> (prepare(query text) -> input, search(input) -> top-k doc indices or ids)."""
    import bm25s

    def peer_text(backend):
        return lambda q: q, lambda q: peer.retrieve(
            bm25s.tokenize(q, stopwords="en", stemmer=stemmer, show_progress=False), k=k,
            show_progress=False, backend_selection=backend).documents[0]

    def peer_ids(backend):
        return ours.analyzer, lambda toks: peer.retrieve(
            [toks], k=k, show_progress=False, backend_selection=backend).documents[0]

    def ours_ids(terms):
        return ours.inverted.search(terms, np.ones(len(terms), np.float32), k)[0]

    return {
        "text": {"jaxir": (lambda q: q, lambda q: ours.search(q, k)[0]),
                 "bm25s": peer_text("auto"), "bm25s-numpy": peer_text("numpy")},
        "ids": {"jaxir": (ours.query_terms, ours_ids),
                "bm25s": peer_ids("auto"), "bm25s-numpy": peer_ids("numpy")},
    }


def add_sparse(searchers: dict, index_dir: Path, k: int, min_idf: float = 0.0):
    """Adds "sparse" to both timing modes; returns the SparseIndex."""
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.text import load_tokenizer

    sp = SparseIndex.load(index_dir, tokenizer=load_tokenizer(), min_idf=min_idf)
    searchers["text"]["sparse"] = (lambda q: q, lambda q: sp.search(q, k)[0])
    searchers["ids"]["sparse"] = (sp.query_vector, lambda tw: sp.search_terms(tw[0], tw[1], k)[0])
    return sp


def report_sparsity(ours, sp, queries: list[str]) -> None:
    """Non-zeros per document and postings read per query: learned sparse vs our BM25."""
    bm25_post = np.mean([ours.inverted.postings_touched(np.unique(ours.query_terms(q))) for q in queries])
    sp_post = np.mean([sp.postings_touched(q) for q in queries])
    print(f"non-zeros/doc  sparse {np.mean(sp.inverted.nonzeros_per_doc()):.1f}   "
          f"bm25 {np.mean(ours.inverted.nonzeros_per_doc()):.1f}")
    print(f"postings/query sparse {sp_post:.0f}   bm25 {bm25_post:.0f}   ratio {sp_post / bm25_post:.2f}")


def time_interleaved(systems: dict, queries: list[str], repeats: int) -> dict[str, np.ndarray]:
    """Per-call latencies in seconds [repeats * Q] per system; system order rotates per query."""
    names = list(systems)
    inputs = {n: [systems[n][0](q) for q in queries] for n in names}
    for n in names:  # warm-up (JIT of JAX top-k, caches)
        for x in inputs[n][:20]:
            systems[n][1](x)
    lat = {n: [] for n in names}
    for r in range(repeats):
        for i in range(len(queries)):
            shift = (r + i) % len(names)
            for n in names[shift:] + names[:shift]:
                search, x = systems[n][1], inputs[n][i]
                start = time.perf_counter()
                search(x)
                lat[n].append(time.perf_counter() - start)
    return {n: np.asarray(v) for n, v in lat.items()}


def report_quality(ours, peer, stemmer, queries: dict, qrels, doc_ids):
    try:
        from jaxir.eval.metrics import evaluate
    except ImportError:
        print("jaxir.eval.metrics not available: skipping nDCG@10")
        return
    if qrels is None:
        return
    import bm25s

    run_ours, run_peer = {}, {}
    for qid, text in queries.items():
        ids, scores = ours.search(text, 100)
        run_ours[qid] = dict(zip(ids, scores.tolist()))
        res = peer.retrieve(bm25s.tokenize(text, stopwords="en", stemmer=stemmer, show_progress=False),
                            k=100, show_progress=False, backend_selection="numpy")
        run_peer[qid] = {doc_ids[i]: float(s) for i, s in zip(res.documents[0], res.scores[0])}
    for name, run in (("jaxir", run_ours), ("bm25s", run_peer)):
        m = evaluate(run, qrels, metrics=("ndcg@10", "recall@100", "mrr@10"))
        print(f"{name:12s} " + "  ".join(f"{k} {v:.4f}" for k, v in m.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--build-repeats", type=int, default=3)
    parser.add_argument("--sparse-index", type=Path, help="learned-sparse index folder to time too")
    parser.add_argument("--sparse-min-idf", type=float, default=0.0,
                        help="learned sparse: drop query terms with idf <= this (as `--min-idf`)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # queries without known terms warn per call

    doc_ids, texts, queries, qrels = load_scifact(args.data)
    print(f"SciFact: {len(texts)} docs, {len(queries)} test queries, k={args.k}, repeats={args.repeats}")
    ours, peer, stemmer, t_ours, t_peer = build_systems(doc_ids, texts, args.build_repeats)
    print(f"index build (median of {args.build_repeats})  jaxir {t_ours:.2f} s   bm25s {t_peer:.2f} s   "
          f"ratio {t_ours / t_peer:.2f}")
    searchers = make_searchers(ours, peer, stemmer, args.k)
    sp = (add_sparse(searchers, args.sparse_index, args.k, args.sparse_min_idf) if args.sparse_index
          else None)
    for mode, systems in searchers.items():
        lat = time_interleaved(systems, list(queries.values()), args.repeats)
        med = {n: np.median(v) * 1e3 for n, v in lat.items()}
        for n, v in lat.items():
            print(f"[{mode:4s}] {n:12s} median {med[n]:.3f} ms   p99 {np.percentile(v, 99) * 1e3:.3f} ms")
        best = min(("bm25s", "bm25s-numpy"), key=med.get)
        p99 = {n: np.percentile(lat[n], 99) for n in ("jaxir", best)}
        print(f"[{mode:4s}] ratio jaxir / {best}: median {med['jaxir'] / med[best]:.3f}   "
              f"p99 {p99['jaxir'] / p99[best]:.3f}")
        if sp is not None:
            p99["sparse"] = np.percentile(lat["sparse"], 99)
            for ref in ("jaxir", best):
                print(f"[{mode:4s}] ratio sparse / {ref}: median {med['sparse'] / med[ref]:.3f}   "
                      f"p99 {p99['sparse'] / p99[ref]:.3f}")
    if sp is not None:
        report_sparsity(ours, sp, list(queries.values()))
    report_quality(ours, peer, stemmer, queries, qrels, doc_ids)


if __name__ == "__main__":
    main()
