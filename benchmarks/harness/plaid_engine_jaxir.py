"""jaxir's PLAID as the benchmark's child process: the counterpart of `plaid_peer_pylate.py` and
`plaid_peer_fastplaid.py`, on the same cache layout and JSON protocol (`speed/bench_plaid.py` runs it).

    python -m benchmarks.harness.plaid_engine_jaxir build --cache C --index-dir I --nbits 2 [--kmeans numpy]
    python -m benchmarks.harness.plaid_engine_jaxir serve --cache C --index-dir I --k 10 --ncells 1 \
        --threshold 0.5 --ndocs 256 [--mmap]     # "ready", then one timed pass per "search" line
    python -m benchmarks.harness.plaid_engine_jaxir exact --cache C --index-dir C --k 10   # exhaustive MaxSim

A build reads token rows by file reads (`TokenFile`), so its peak RSS is what it holds. `serve`
also answers "profile" (PlaidStats of the timed passes) and "batch N" (one `search_batch` over all
queries on N threads). Its BLAS threads come from the environment the benchmark sets.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmarks.harness.proc_stats import engine_arguments, folder_bytes, peak_rss_mb, reply, serve_searches


def load_docs(cache: Path):
    """(token vectors [T, D] memory-mapped, doclens [N]): a build reads what it needs."""
    return np.load(cache / "doc_tokens.npy", mmap_mode="r"), np.load(cache / "doclens.npy")


class TokenFile:
    """Rows of doc_tokens.npy by plain file reads, not a memory map: a build's peak RSS then
    counts what the build holds, not the page cache of the corpus it streams through."""

    def __init__(self, path: Path):
        self.file = open(path, "rb", buffering=0)
        version = np.lib.format.read_magic(self.file)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0)
        self.shape, _, self.dtype = read_header(self.file)
        self.start = self.file.tell()
        self.row_bytes = self.shape[1] * self.dtype.itemsize

    def rows(self, lo: int, hi: int, out: np.ndarray | None = None) -> np.ndarray:
        """Token rows [lo, hi) as a [hi - lo, D] array (into `out` when given)."""
        out = np.empty((hi - lo, self.shape[1]), self.dtype) if out is None else out
        view, done = memoryview(out).cast("B"), 0
        self.file.seek(self.start + lo * self.row_bytes)
        while done < len(view):
            done += self.file.readinto(view[done:])
        return out


def fit_our_codec(tokens: TokenFile, doclens, offsets, args):
    """Codec from a seeded doc sample, as `build_colbert_index` does (pass 1)."""
    from jaxir.index.codec import fit_codec_numpy
    from jaxir.index.plaid import num_sample_docs

    # Same draw as jaxir.retrievers.colbert_build.sample_doc_indices (seed 0).
    rng = np.random.default_rng(0)
    picks = np.sort(rng.choice(len(doclens), num_sample_docs(len(doclens)), replace=False))
    sample = np.empty((int(doclens[picks].sum()), tokens.shape[1]), np.float32)
    at = 0
    for i in picks:  # one buffer, filled document by document
        tokens.rows(offsets[i], offsets[i + 1], out=sample[at:at + doclens[i]])
        at += doclens[i]
    est = int(len(doclens) * len(sample) / len(picks))
    if args.kmeans == "numpy":
        k = 2 ** int(np.floor(np.log2(16 * np.sqrt(est))))
        return fit_codec_numpy(sample, k, args.nbits)
    from jaxir.retrievers.colbert_build import fit_codec

    return fit_codec(sample, n_embeddings_est=est, nbits=args.nbits, consume=True)


def build(args) -> None:
    from jaxir.index.plaid_builder import PlaidIndexBuilder

    tokens, doclens = TokenFile(args.cache / "doc_tokens.npy"), np.load(args.cache / "doclens.npy")
    offsets = np.concatenate([[0], np.cumsum(doclens, dtype=np.int64)])
    rss_loaded = peak_rss_mb()
    start = time.perf_counter()
    builder = PlaidIndexBuilder(fit_our_codec(tokens, doclens, offsets, args))
    for lo in range(0, len(doclens), 1024):
        hi = min(lo + 1024, len(doclens))
        batch = tokens.rows(offsets[lo], offsets[hi])
        builder.add(np.split(batch, offsets[lo + 1:hi] - offsets[lo]), [str(i) for i in range(lo, hi)])
    index = builder.finish()
    fingerprint = json.loads((args.cache / "meta.json").read_text())["fingerprint"]
    index.save(args.index_dir, model_fingerprint=fingerprint)
    reply({"build_s": time.perf_counter() - start, "rss_after_load_mb": rss_loaded,
           "peak_rss_mb": peak_rss_mb(), "num_docs": index.num_docs,
           "num_tokens": index.num_tokens, "num_centroids": len(index.codec.centroids),
           "disk_bytes": folder_bytes(args.index_dir)})


def serve(args) -> None:
    """Answer stdin "search" lines with one timed pass over the queries (JSON line each); ours
    also answers "profile" (PlaidStats of the timed passes so far) and "batch N" (one
    `search_batch` over all queries on N threads, timed)."""
    from jaxir.index import exact

    queries = np.load(args.cache / "queries.npy")[: args.query_limit]
    handlers = {}
    if args.mode == "exact":
        tokens, doclens = load_docs(args.cache)
        every = np.arange(len(doclens))
        search = lambda q: exact.top_k(exact.maxsim_scores(q, tokens, doclens), every, args.k)
    else:
        from jaxir.index.plaid import PlaidIndex
        from jaxir.index.plaid_stats import PlaidStats

        index = PlaidIndex.load(args.index_dir, mmap=args.mmap)
        knobs = {"ncells": args.ncells, "centroid_score_threshold": args.threshold,
                 "ndocs": args.ndocs}
        stats = PlaidStats()
        search = lambda q: index.search(q, args.k, stats=stats, **knobs)

        def batch(threads: str) -> dict:
            start = time.perf_counter()
            index.search_batch(queries, args.k, threads=int(threads), **knobs)
            return {"threads": int(threads), "seconds": time.perf_counter() - start,
                    "queries": len(queries)}

        handlers = {"batch": batch, "profile": lambda _: {
            "ms_per_query": stats.milliseconds_per_query(), "queries": stats.queries,
            "candidates": stats.candidates / max(stats.queries, 1),
            "decompressed_docs": stats.decompressed_docs / max(stats.queries, 1)}}
    for q in queries[: args.warmup]:
        search(q)
    if args.mode != "exact":
        stats.__init__()  # the profile covers timed passes only
    reply({"ready": True, "rss_mb": peak_rss_mb()})
    serve_searches(queries, lambda q: search(q)[::-1], handlers=handlers)


def arguments(argv=None):
    def ours(parser):
        parser.add_argument("--kmeans", choices=("jax", "numpy"), default="jax")
        parser.add_argument("--mmap", action="store_true", help="search a memory-mapped index")

    return engine_arguments(__doc__.split("\n")[0], modes=("build", "serve", "exact"), add=ours, argv=argv,
                            knobs={"ncells": ("", "cells per query token (default: PLAID's for k)"),
                                   "threshold": ("", "centroid score threshold (default: PLAID's for k)"),
                                   "ndocs": ("", "documents after stage 2 (default: PLAID's for k)")})


def main() -> None:
    args = arguments()
    build(args) if args.mode == "build" else serve(args)


if __name__ == "__main__":
    main()
