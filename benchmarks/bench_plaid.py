"""PLAID side by side: jaxir's PLAID vs PyLate's PLAID vs exhaustive MaxSim, on the SAME embeddings.

1. Encode the corpus and the test queries once with jaxir's ColBERT (MiniLM + seeded untrained
   128-d projection) and cache them: doc_tokens.npy [T, D] float32, doclens.npy [N] int32,
   queries.npy [Q, Lq, D] float32, ids.json, meta.json. Both engines index exactly these vectors,
   so the comparison is of the engines, not the encoders.
2. Build each index in its own fresh process (build seconds, peak RSS, bytes on disk): ours with
   `jaxir.index.plaid` (codec from `jaxir.retrievers.colbert_build.fit_codec`, JAX k-means; or
   `--kmeans numpy`), PyLate 1.6's vendored Stanford backend (`use_fast=False`) in its own virtual
   environment `.benchvenv-pylate/` (created on first use, CPU torch from the local wheel).
3. Search: one long-lived process per engine; timed rounds alternate between the engines (order
   rotating per round), single query at a time, the same (ncells, threshold, ndocs) for both.
   Search processes run with OPENBLAS/OMP/MKL_NUM_THREADS=N and torch.set_num_threads(N), N =
   `--search-threads` (default 1).
4. Exhaustive MaxSim (`jaxir.index.exact.maxsim_scores`, uncompressed fp32) is the reference:
   recall@10 vs exhaustive = |top10(engine) & top10(exact)| / 10, averaged over queries.

    python benchmarks/bench_plaid.py [--data ../shared/data/beir/scifact] [--nbits 2] [--k 10]
        [--max-docs 300 --max-queries 20] [--rounds 3] [--skip-peer] [--cache runs/bench_plaid]
        [--peers pylate,fast-plaid] [--fastplaid-probe 8 --fastplaid-full 4096] [--search-threads 1]

fast-plaid 1.7 (`plaid_peer_fastplaid.py`, in its own environment with the torch 2.11.0 it pins)
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
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from peer_venv import PEER_VENV, PEERS, ensure_peer_venv
from plaid_embeddings import ensure_cache
from proc_stats import folder_bytes, peak_rss_mb, reply, serve_searches

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "beir" / "scifact"
PEER_SCRIPTS = {"pylate": Path(__file__).resolve().with_name("plaid_peer_pylate.py"),
                "fast-plaid": Path(__file__).resolve().with_name("plaid_peer_fastplaid.py")}
FASTPLAID_PROBE, FASTPLAID_FULL = 8, 4096  # fast-plaid's search defaults (n_ivf_probe, n_full_scores)
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def search_threads(n: int) -> dict:
    """The BLAS/OpenMP thread settings of a search process (torch threads are set apart)."""
    return dict.fromkeys(THREAD_VARS, str(n))








# ---- 2/3. our worker processes (`--worker build|plaid|exact`) ----------------------------------
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


def worker_build(args) -> None:
    from jaxir.index.plaid import PlaidIndexBuilder

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


def worker_serve(args) -> None:
    """Answer stdin "search" lines with one timed pass over the queries (JSON line each); ours
    also answers "profile" (PlaidStats of the timed passes so far) and "batch N" (one
    `search_batch` over all queries on N threads, timed)."""
    from jaxir.index import exact

    queries = np.load(args.cache / "queries.npy")[: args.query_limit]
    handlers = {}
    if args.worker == "exact":
        tokens, doclens = load_docs(args.cache)
        every = np.arange(len(doclens))
        search = lambda q: exact.top_k(exact.maxsim_scores(q, tokens, doclens), every, args.k)
    else:
        from jaxir.index.plaid import PlaidIndex, PlaidStats

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
    if args.worker != "exact":
        stats.__init__()  # the profile covers timed passes only
    reply({"ready": True, "rss_mb": peak_rss_mb()})
    serve_searches(queries, lambda q: search(q)[::-1], handlers=handlers)


# ---- orchestration ------------------------------------------------------------------------------
def child_env(search: bool, threads: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TORCH_EXTENSIONS_DIR"] = str(PEER_VENV / "torch_extensions")
    return {**env, **search_threads(threads)} if search else env


def engine_argv(engine: str, mode: str, args, index_dir: Path) -> list[str]:
    common = ["--cache", str(args.folder), "--index-dir", str(index_dir),
              "--nbits", str(args.nbits), "--k", str(args.k), "--ncells", str(args.ncells),
              "--threshold", str(args.threshold), "--ndocs", str(args.ndocs),
              "--warmup", str(args.warmup)]
    if getattr(args, "query_limit", None):
        common += ["--query-limit", str(args.query_limit)]
    if engine in PEER_SCRIPTS:
        peer_mode = "build" if mode == "build" else "serve"
        threads = [] if mode == "build" else ["--threads", str(args.search_threads)]
        if engine == "fast-plaid":  # its own knobs (it has no threshold); its defaults unless set
            common = common + ["--ncells", str(getattr(args, "fastplaid_probe", FASTPLAID_PROBE)),
                               "--ndocs", str(getattr(args, "fastplaid_full", FASTPLAID_FULL))]
        return [str(args.peer_pythons[engine]), str(PEER_SCRIPTS[engine]), peer_mode] + common + threads
    mmap = ["--mmap"] if getattr(args, "mmap", False) else []
    return [sys.executable, __file__, "--worker", mode, "--kmeans", args.kmeans] + common + mmap


class WorkerDied(RuntimeError):
    """A worker process ended without answering."""


class Worker:
    """A child process speaking the one-JSON-line-per-request protocol; stderr goes to `log`."""

    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log.open("ab"), text=True, cwd=ROOT)

    def read(self, timeout: float | None = None) -> dict:
        """The child's next JSON line; TimeoutError (the child killed) after `timeout` seconds."""
        if timeout is not None and not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError(f"worker {self.proc.args[:4]} gave no answer in {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            lines = self.log.read_text(errors="replace").strip().splitlines() or ["(empty log)"]
            why = "killed by signal 9, e.g. for memory" if rc == -9 else f"exit status {rc}"
            raise WorkerDied(f"{why}; log: {lines[-1][:300]}")
        return json.loads(line)

    def ask(self, msg: str) -> dict:
        self.proc.stdin.write(msg + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def run_build(engine: str, args, timeout: float | None = None) -> dict:
    """Build `engine`'s index in a fresh process (or reuse the record of an earlier build); a
    build that gives no answer in `timeout` seconds is stopped and recorded as {"timeout_s"}; a peer
    build that dies (e.g. killed for memory) as {"failed": its exit status and last log line}."""
    index_dir = args.folder / f"index-{engine}-nb{args.nbits}"
    record = args.folder / f"build-{engine}-nb{args.nbits}.json"
    if args.reuse_builds and record.is_file():
        result = json.loads(record.read_text())
        if index_dir.is_dir() or "timeout_s" in result or "failed" in result:
            print(f"reusing the {engine} build recorded earlier ({record.name})", flush=True)
            return {**result, "index_dir": index_dir}
    shutil.rmtree(index_dir, ignore_errors=True)
    worker = Worker(engine_argv(engine, "build", args, index_dir), child_env(False),
                    args.folder / f"{engine}.log")
    try:
        result = worker.read(timeout)
        worker.close()
    except TimeoutError:
        shutil.rmtree(index_dir, ignore_errors=True)
        result = {"timeout_s": timeout}
        print(f"{engine}: no index after {timeout:.0f} s; stopped", flush=True)
    except WorkerDied as e:
        if engine not in PEER_SCRIPTS:  # ours failing is a bug to see, not a figure
            raise
        shutil.rmtree(index_dir, ignore_errors=True)
        result = {"failed": str(e)}
        print(f"{engine}: build failed: {e}", flush=True)
    record.write_text(json.dumps(result))
    if "build_s" in result:
        print(f"built {engine}: {result['build_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
              f"{result['disk_bytes'] / result['num_tokens']:.1f} B/token", flush=True)
    return {**result, "index_dir": index_dir}


def time_rounds(workers: dict, rounds: int) -> dict:
    """Alternate timed passes between engines (rotating order); latencies pooled over rounds."""
    names, out = list(workers), {n: {"latency_s": []} for n in workers}
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            res = workers[n].ask("search")
            out[n]["latency_s"] += res["latency_s"]
            out[n].setdefault("rows", res["rows"])
            out[n].setdefault("scores", res["scores"])
    return out


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


def run_benchmark(args) -> dict:
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
    engines = ["jaxir"] + ([] if args.skip_peer else args.peers.split(","))
    args.peer_pythons = {e: ensure_peer_venv(PEERS[e][0], e) for e in engines[1:]}
    builds = {e: run_build(e, args) for e in engines}
    for e in [e for e in engines if "build_s" not in builds[e]]:
        print(f"{e}: no index ({builds[e]}); left out of the search", flush=True)
        engines.remove(e)
    workers = {}
    for e in engines:  # started one after another, so warm-ups never overlap
        workers[e] = Worker(engine_argv(e, "plaid", args, builds[e]["index_dir"]),
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
    return results


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
    parser.add_argument("--peers", default="pylate", help="peers to run: pylate, fast-plaid (comma-separated)")
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
    parser.add_argument("--worker", choices=("build", "plaid", "exact"), help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mmap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--query-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_build(args) if args.worker == "build" else worker_serve(args)
    results = run_benchmark(args)
    print_table(results)
    print(f"search threads: {search_threads(args.search_threads)} (+ torch.set_num_threads("
          f"{args.search_threads}) for PyLate); builds use the default threads. colbert-ai: skipped "
          f"(see this script's docstring).")
    out = args.json or args.folder / f"results-nb{args.nbits}-k{args.k}.json"
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "search_threads": search_threads(args.search_threads),
                               "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
