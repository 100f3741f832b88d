"""fast-plaid (LightOn's Rust PLAID, PyLate's default backend) on cached token embeddings, on CPU.

Runs inside its own peer environment (`python -m benchmarks.harness.peer_venv fast-plaid`: torch
2.11.0, which fast-plaid 1.7 pins, and fast-plaid 1.7.0.2110); it never imports jaxir. It runs as a
module from the repository root (`plaid_workers.engine_argv`), which puts the `benchmarks` package
on its path. Same cache layout and JSON protocol as `plaid_peer_pylate.py` (build -> one JSON line;
serve -> "ready", then one timed pass per "search" line). Its knobs are its own: `n_ivf_probe` cells per query token and
`n_full_scores` documents scored exactly (defaults 8 and 4096); `--ncells` and `--ndocs` set them.

    python -m benchmarks.harness.plaid_peer_fastplaid build --cache C --index-dir I --nbits 2
    python -m benchmarks.harness.plaid_peer_fastplaid serve --cache C --index-dir I --k 10 --ncells 8 --ndocs 4096
"""
from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks.harness import proc_stats
from benchmarks.harness.proc_stats import engine_arguments, folder_bytes, peak_rss_mb, serve_searches

_PROTOCOL = sys.stdout  # the JSON protocol's stream (main() sends everything else to stderr)


def reply(obj: dict) -> None:
    proc_stats.reply(obj, stream=_PROTOCOL)


def build(args) -> None:
    import torch
    from fast_plaid import search

    tokens = np.load(args.cache / "doc_tokens.npy")
    doclens = np.load(args.cache / "doclens.npy")
    docs = [torch.from_numpy(d) for d in np.split(tokens, np.cumsum(doclens)[:-1])]
    rss_loaded = peak_rss_mb()
    start = time.perf_counter()
    search.FastPlaid(index=str(args.index_dir), device="cpu").create(
        documents_embeddings=docs, kmeans_niters=4, nbits=args.nbits)
    reply({"build_s": time.perf_counter() - start, "rss_after_load_mb": rss_loaded,
           "peak_rss_mb": peak_rss_mb(), "num_docs": len(docs), "num_tokens": int(doclens.sum()),
           "disk_bytes": folder_bytes(args.index_dir)})


def serve(args) -> None:
    import torch
    from fast_plaid import search

    torch.set_num_threads(args.threads)
    index = search.FastPlaid(index=str(args.index_dir), device="cpu")
    queries = np.load(args.cache / "queries.npy")[: args.query_limit]

    def one(q):
        hits = index.search(torch.from_numpy(q[None]), top_k=args.k, n_ivf_probe=args.ncells,
                            n_full_scores=args.ndocs, show_progress=False)[0]
        return [p for p, _ in hits], [s for _, s in hits]

    for q in queries[: args.warmup]:
        one(q)
    reply({"ready": True, "rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()})
    serve_searches(queries, one, stream=_PROTOCOL)


def arguments(argv=None):
    return engine_arguments(__doc__.split("\n")[0], argv=argv,
                            knobs={"ncells": (8, "n_ivf_probe"), "threshold": (0.0, "(unused: fast-plaid has none)"),
                                   "ndocs": (4096, "n_full_scores")})


def main() -> None:
    sys.stdout = sys.stderr  # library output stays off the protocol stream
    args = arguments()
    build(args) if args.mode == "build" else serve(args)


if __name__ == "__main__":
    main()
