"""PyLate's PLAID (its vendored Stanford backend, `use_fast=False`) on cached token embeddings.

Runs inside the peer virtual environment that `speed/bench_plaid.py` creates (PyLate 1.6 + the local
CPU torch); it never imports jaxir. It runs as a module from the repository root
(`plaid_workers.engine_argv`), which puts the `benchmarks` package on its path. The cache folder
holds doc_tokens.npy [T, D] float32, doclens.npy [N] int32 and queries.npy [Q, Lq, D] float32 (see
speed/bench_plaid.py).

    python -m benchmarks.harness.plaid_peer_pylate build --cache C --index-dir I --nbits 2 --ncells 1 \
        --threshold 0.5 --ndocs 256       # one JSON line: build seconds, peak RSS, disk bytes
    python -m benchmarks.harness.plaid_peer_pylate serve --cache C --index-dir I --k 10 ...
        # prints a "ready" JSON line, then answers each stdin line "search" with one JSON line of
        # per-query latencies (seconds) and top-k rows; "quit" ends it

Timing calls the backend's `Searcher.search(Q [Lq, D], k)` directly: PyLate's `PLAID.__call__`
wrapper re-reads its id-mapping pickle on every call, which is not engine work. Library output
goes to stderr so stdout carries only the JSON protocol. The C++ extensions are compiled (or
loaded from TORCH_EXTENSIONS_DIR) before any timing starts.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import proc_stats
from benchmarks.harness.proc_stats import engine_arguments, folder_bytes, peak_rss_mb, serve_searches

INDEX_NAME = "pylate"
_PROTOCOL = sys.stdout  # the JSON protocol's stream (main() sends everything else to stderr)


def reply(obj: dict) -> None:
    proc_stats.reply(obj, stream=_PROTOCOL)


def load_docs(cache: Path) -> list[np.ndarray]:
    """doc_tokens.npy + doclens.npy -> list of [n_tok_i, D] float32 arrays (loaded into RAM)."""
    tokens = np.load(cache / "doc_tokens.npy")
    doclens = np.load(cache / "doclens.npy")
    return np.split(tokens, np.cumsum(doclens)[:-1])


def compile_extensions() -> float:
    """Build/load all four C++ extensions of the backend (first use compiles each, ~40 s)."""
    from pylate.indexes.stanford_nlp.indexing.codecs.residual import ResidualCodec
    from pylate.indexes.stanford_nlp.modeling import colbert as scoring
    from pylate.indexes.stanford_nlp.search.index_storage import IndexScorer
    from pylate.indexes.stanford_nlp.search.strided_tensor import StridedTensor

    start = time.perf_counter()
    IndexScorer.try_load_torch_extensions(False)
    ResidualCodec.try_load_torch_extensions(False)
    StridedTensor.try_load_torch_extensions(False)
    if scoring._segmented_maxsim is None:
        scoring._segmented_maxsim = scoring.try_load_torch_extensions(False)
    return time.perf_counter() - start


def open_index(args, *, override: bool):
    from pylate import indexes

    return indexes.PLAID(index_folder=str(args.index_dir), index_name=INDEX_NAME,
                         override=override, use_fast=False, nbits=args.nbits, kmeans_niters=4,
                         embedding_size=args.dim, ndocs=args.ndocs, ncells=args.ncells,
                         centroid_score_threshold=args.threshold)


def build(args) -> None:
    """Index every document (k-means, compression, IVF, writing, opening the searcher)."""
    compile_s = compile_extensions()
    docs = load_docs(args.cache)
    rss_loaded = peak_rss_mb()
    start = time.perf_counter()
    index = open_index(args, override=True)
    index.add_documents(documents_ids=[str(i) for i in range(len(docs))], documents_embeddings=docs)
    build_s = time.perf_counter() - start
    reply({"build_s": build_s, "compile_s": compile_s, "rss_after_load_mb": rss_loaded,
           "peak_rss_mb": peak_rss_mb(), "num_docs": len(docs),
           "num_tokens": int(sum(len(d) for d in docs)),
           "disk_bytes": folder_bytes(args.index_dir / INDEX_NAME)})
    del index


def serve(args) -> None:
    """Load the index, warm up, then answer "search" requests (one timed pass over the queries)."""
    import torch

    torch.set_num_threads(args.threads)
    compile_extensions()
    searcher = open_index(args, override=False)._index.searcher
    queries = np.load(args.cache / "queries.npy")[: args.query_limit]
    for q in queries[: args.warmup]:
        searcher.search(q, k=args.k)
    reply({"ready": True, "rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()})
    serve_searches(queries, lambda q: searcher.search(q, k=args.k)[::2], stream=_PROTOCOL)


def arguments(argv=None):
    return engine_arguments(__doc__.split("\n")[0], argv=argv,
                            knobs={"ncells": (None, "cells per query token"),
                                   "threshold": (None, "centroid score threshold"),
                                   "ndocs": (None, "documents after stage 1")})


def main() -> None:
    sys.stdout = sys.stderr  # the Stanford code prints progress; keep it off the protocol stream
    args = arguments()
    build(args) if args.mode == "build" else serve(args)


if __name__ == "__main__":
    main()
