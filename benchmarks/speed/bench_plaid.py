"""PLAID side by side: jaxir's PLAID vs PyLate's PLAID vs exhaustive MaxSim, on the SAME embeddings.

1. Encode the corpus and the test queries once with jaxir's ColBERT (MiniLM + seeded untrained
   128-d projection) and cache them: doc_tokens.npy [T, D] float32, doclens.npy [N] int32,
   queries.npy [Q, Lq, D] float32, ids.json, meta.json. Both engines index exactly these vectors,
   so the comparison is of the engines, not the encoders.
2. Build each index in its own fresh process (build seconds, peak RSS, bytes on disk; the processes
   and their protocol: `harness/plaid_workers.py`): ours with `jaxir.index.plaid` (`harness/plaid_engine_jaxir.py`;
   codec from `jaxir.retrievers.colbert_build.fit_codec`, JAX k-means; or `--kmeans numpy`), PyLate
   1.6's vendored Stanford backend (`use_fast=False`) in its own virtual environment
   `.benchvenv-pylate/` (created on first use, CPU torch from the local wheel).
3. Search: one long-lived process per engine; timed rounds alternate between the engines (order
   rotating per round), single query at a time, the same (ncells, threshold, ndocs) for both.
   Search processes run with OPENBLAS/OMP/MKL_NUM_THREADS=N and torch.set_num_threads(N), N =
   `--search-threads` (default 1).
4. Exhaustive MaxSim (`jaxir.index.exact.maxsim_scores`, uncompressed fp32) is the reference:
   recall@10 vs exhaustive = |top10(engine) & top10(exact)| / 10, averaged over queries.

    python -m benchmarks.speed.bench_plaid [--data ../shared/data/beir/scifact] [--nbits 2] [--k 10]
        [--max-docs 300 --max-queries 20] [--rounds 3] [--skip-peer] [--cache runs/bench_plaid]
        [--peers pylate,fast-plaid] [--fastplaid-probe 8 --fastplaid-full 4096] [--search-threads 1]

fast-plaid 1.7 (`harness/plaid_peer_fastplaid.py`, in its own environment with the torch 2.11.0 it pins)
runs with its own search knobs, by default its defaults (8 cells per query token, 4096 documents
scored exactly; it has no centroid-score threshold); `--fastplaid-probe 1 --fastplaid-full 256`
sets PLAID's k=10 values. Compare it at its recall.

colbert-ai is not run: it indexes text through its own checkpoint (it cannot take these
embeddings), needs transformers < 5 in a third environment, and its PLAID engine is the code
PyLate vendors, which the PyLate row already measures on the same embeddings.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks import BEIR, ROOT
from benchmarks.harness.peer_venv import PEERS, ensure_peer_venv
from benchmarks.harness.plaid_embeddings import ensure_cache
from benchmarks.harness.plaid_workers import (FASTPLAID_FULL, FASTPLAID_PROBE, PEER_SCRIPTS, Worker, child_env,
                                              engine_argv, peer_list, run_build, search_threads, time_rounds)

DEFAULT_DATA = BEIR / "scifact"


# ---- report -------------------------------------------------------------------------------------
def add_quality(res: dict, exact_rows: list, doc_ids: list, qids: list, qrels: dict) -> None:
    """recall@10 vs exhaustive and nDCG@10 (+ recall@100 when k >= 100) of one engine."""
    from jaxir.eval.metrics import evaluate

    overlap = [len(set(r[:10]) & set(e[:10])) / max(1, len(e[:10]))
               for r, e in zip(res["rows"], exact_rows)]
    res["recall10_vs_exact"] = float(np.mean(overlap))
    run = {q: {doc_ids[d]: s for d, s in zip(rows, scores)}
           for q, rows, scores in zip(qids, res["rows"], res["scores"])}
    k = max(len(r) for r in res["rows"])
    metrics = ("ndcg@10", "recall@100") if k >= 100 else ("ndcg@10",)
    res.update(evaluate(run, {q: qrels[q] for q in qids}, metrics=metrics))


def print_table(results: dict) -> None:
    cols = ("recall@10 vs exact", "nDCG@10", "median ms", "p99 ms", "build s", "peak RSS MB",
            "B/token")
    print(f"\n{'engine':12s}" + "".join(f"{c:>20s}" for c in cols))
    for name, r in results.items():
        lat = np.asarray(r["latency_s"]) * 1e3
        vals = (r["recall10_vs_exact"], r["ndcg@10"], np.median(lat), np.percentile(lat, 99),
                r.get("build_s"), r.get("peak_rss_mb"), r.get("bytes_per_token"))
        print(f"{name:12s}" + "".join(f"{'-':>20s}" if v is None else f"{v:20.3f}" for v in vals))
    for peer_name in [n for n in results if n in PEER_SCRIPTS]:
        ours, peer = results["jaxir"], results[peer_name]
        ratio = lambda f: f(ours) / f(peer)
        med = lambda r: np.median(r["latency_s"])
        p99 = lambda r: np.percentile(r["latency_s"], 99)
        print(f"\nratio jaxir / {peer_name}: median latency {ratio(med):.3f}, p99 {ratio(p99):.3f}, "
              f"build {ratio(lambda r: r['build_s']):.3f}, "
              f"peak RSS {ratio(lambda r: r['peak_rss_mb']):.3f}, "
              f"bytes/token {ratio(lambda r: r['bytes_per_token']):.3f}")


def run_benchmark(args) -> tuple[dict, dict]:
    """(results per searched engine and "exhaustive", {engine: build record} of peers that built
    no index: stopped or failed)."""
    from jaxir.eval.beir import load_beir
    from jaxir.index.plaid import PlaidParams

    base = PlaidParams.for_k(args.k)
    args.ncells = args.ncells or base.ncells
    args.threshold = base.centroid_score_threshold if args.threshold is None else args.threshold
    args.ndocs = args.ndocs or base.ndocs
    args.folder = ensure_cache(args)
    ids = json.loads((args.folder / "ids.json").read_text())
    print(f"embeddings: {args.folder} ({len(ids['doc_ids'])} docs, {len(ids['query_ids'])} "
          f"queries); nbits {args.nbits}, k {args.k}, ncells {args.ncells}, threshold "
          f"{args.threshold}, ndocs {args.ndocs}", flush=True)
    engines = ["jaxir"] + ([] if args.skip_peer else args.peers)
    args.peer_pythons = {e: ensure_peer_venv(PEERS[e][0], e) for e in engines[1:]}
    builds = {e: run_build(e, args) for e in engines}
    unbuilt = {e: {k: v for k, v in builds[e].items() if k != "index_dir"}
               for e in engines if "build_s" not in builds[e]}
    for e, why in unbuilt.items():
        print(f"{e}: no index ({why}); left out of the search", flush=True)
        engines.remove(e)
    workers = {}
    for e in engines:  # started one after another, so warm-ups never overlap
        workers[e] = Worker(engine_argv(e, "serve", args, builds[e]["index_dir"]),
                            child_env(True, args.search_threads), args.folder / f"{e}.log")
        builds[e]["search_rss_mb"] = workers[e].read()["rss_mb"]
    results = time_rounds(workers, args.rounds)
    exact = Worker(engine_argv("jaxir", "exact", args, args.folder), child_env(True, args.search_threads),
                   args.folder / "exact.log")
    exact.read()
    results["exhaustive"] = exact.ask("search")
    for w in [*workers.values(), exact]:
        w.close()
    data = load_beir(args.data, "test")
    for name, res in results.items():
        add_quality(res, results["exhaustive"]["rows"], ids["doc_ids"], ids["query_ids"],
                    data.qrels)
        if name in builds:
            b = builds[name]
            res.update({k: v for k, v in b.items() if k != "index_dir"},
                       bytes_per_token=b["disk_bytes"] / b["num_tokens"])
    return results, unbuilt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--nbits", type=int, default=2, choices=(1, 2, 4))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-docs", type=int, default=None, help="doc subset for quick runs")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per engine")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries per process")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--peers", type=peer_list, default="pylate",
                        help="peers to run: pylate, fast-plaid (comma-separated)")
    parser.add_argument("--fastplaid-probe", type=int, default=FASTPLAID_PROBE,
                        help="fast-plaid's n_ivf_probe, cells per query token (its default 8)")
    parser.add_argument("--fastplaid-full", type=int, default=FASTPLAID_FULL,
                        help="fast-plaid's n_full_scores, documents scored exactly (its default 4096)")
    parser.add_argument("--search-threads", type=int, default=1,
                        help="BLAS threads of each search process (and torch threads of PyLate's)")
    parser.add_argument("--reuse-builds", action="store_true",
                        help="time search on indexes (and build figures) kept from an earlier run")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench_plaid")
    parser.add_argument("--kmeans", choices=("jax", "numpy"), default="jax")
    parser.add_argument("--ncells", type=int, default=None, help="default: PLAID's for k")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--ndocs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32, help="encoder batch")
    parser.add_argument("--random", action="store_true", help="random unit vectors, no encoder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results, unbuilt = run_benchmark(args)
    print_table(results)
    for e, why in unbuilt.items():
        print(f"{e}: no index, not searched: {why}")
    print(f"search threads: {search_threads(args.search_threads)} (+ torch.set_num_threads("
          f"{args.search_threads}) for PyLate); builds use the default threads. colbert-ai: skipped "
          f"(see this script's docstring).")
    out = args.json or args.folder / f"results-nb{args.nbits}-k{args.k}.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "search_threads": search_threads(args.search_threads),
                               "results": results, "unbuilt": unbuilt}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
