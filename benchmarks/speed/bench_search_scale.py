"""Search at scale: jaxir's PLAID beside the peers', from SciFact (0.97M token vectors) to 16M.

    python -m benchmarks.speed.bench_search_scale --sizes 1000000,4000000,16000000
        [--data ../shared/data/beir/scifact] [--peers pylate[,fast-plaid]] [--peer-timeout 1800]
        [--sample-queries 50] [--rounds 3] [--out runs/bench_scale] [--skip-peer] [--redo] [--rebuild]
        [--plots benchmarks/plots]

Corpora: SciFact's real vectors (the `bench_plaid` cache: MiniLM + seeded 128-d projection,
its test queries), then one SciFact-shaped synthetic corpus per --sizes entry
(`harness/synthetic_corpus.py`: SciFact's per-document code sequences and its tokens, resampled by
centroid code and jittered; SciFact's real queries). dim 128, nbits 2, every engine indexes the same
vectors.

Per corpus and engine, each in a fresh process (`harness/plaid_workers.py`):
- build: seconds, peak RSS, bytes on disk (a peer's build is stopped after --peer-timeout, and one
  that dies, e.g. for memory, is recorded as failed);
- search at k 10 and k 100 with PLAID's defaults for k (fast-plaid, which has no threshold: its
  cells per token = PLAID's ncells, its exactly scored documents = PLAID's ndocs), single queries
  on one thread, timed rounds alternating between engines: median and p99 latency; search RSS
  (ours memory-mapped);
- ours: queries/s of `search_batch` on 1 and on 2 threads, and the per-stage profile;
- top-10 recall against exhaustive float32 MaxSim on the first --sample-queries queries.
Every measured corpus is kept in OUT/results.json (reused unless --redo, which searches again with
the builds kept, or --rebuild, which also builds again), so sizes can be run one invocation at a
time; `--redo --peers pylate,fast-plaid` adds a peer to measured corpora (an engine left out of a
--redo keeps its earlier figures, listed under "from_an_earlier_run"). Plots: benchmarks/plots/search_scale_{latency,memory}.png.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks import ROOT
from benchmarks.harness import plaid_workers as pw
from benchmarks.harness.peer_venv import PEERS, ensure_peer_venv
from benchmarks.harness.plaid_embeddings import ensure_cache
from benchmarks.harness.plaid_engine_jaxir import load_docs
from benchmarks.harness.synthetic_corpus import SyntheticCorpus, code_stats, measure_shape
from benchmarks.speed.bench_plaid import DEFAULT_DATA
from jaxir.index.plaid import PlaidIndex, PlaidParams

PLOTS = ROOT / "benchmarks" / "plots"
KS = (10, 100)


def corpus_args(folder: Path, cli, **extra) -> argparse.Namespace:
    """The namespace `plaid_workers` reads (builds, servers), for one corpus folder."""
    return argparse.Namespace(folder=folder, nbits=2, k=10, ncells=1, threshold=0.5, ndocs=256,
                              warmup=10, kmeans="jax", reuse_builds=not cli.rebuild, mmap=True,
                              search_threads=1, query_limit=None,
                              peer_pythons=getattr(cli, "peer_pythons", {}), **extra)


def with_k(args: argparse.Namespace, k: int) -> argparse.Namespace:
    """`args` with PLAID's default knobs for k (PyLate gets the same ones; fast-plaid its two)."""
    p = PlaidParams.for_k(k)
    return argparse.Namespace(**{**vars(args), "k": k, "ncells": p.ncells,
                                 "threshold": p.centroid_score_threshold, "ndocs": p.ndocs,
                                 "fastplaid_probe": p.ncells, "fastplaid_full": p.ndocs})


def scifact_shape(folder: Path):
    """SciFact's shape from its cached vectors and our index built on them."""
    tokens, doclens = load_docs(folder)
    index = PlaidIndex.load(folder / "index-jaxir-nb2", verify=False)
    return measure_shape(tokens, doclens, np.asarray(index.codes), len(index.codec.centroids))


def make_synthetic(out: Path, n_tokens: int, shape, real_folder: Path) -> Path:
    folder = out / f"synthetic-{n_tokens}"
    meta = folder / "meta.json"
    corpus = SyntheticCorpus(shape, n_tokens)
    if meta.is_file() and json.loads(meta.read_text())["spec"] == corpus.spec():
        return folder
    ids = json.loads((real_folder / "ids.json").read_text())
    return corpus.write(folder, np.load(real_folder / "queries.npy"), ids["query_ids"])


def search_all(engines: list[str], args, cli) -> dict:
    """Per k: timed rounds (both engines), our throughput and profile, and recall vs exact."""
    out = {}
    exact_args = argparse.Namespace(**{**vars(args), "query_limit": cli.sample_queries})
    exact = pw.Worker(pw.engine_argv("jaxir", "exact", exact_args, args.folder),
                      pw.child_env(True, 2), args.folder / "exact.log")
    exact.read()
    exact_rows = exact.ask("search")["rows"]
    exact.close()
    for k in KS:
        kargs = with_k(args, k)
        workers = {}
        for e in engines:  # started one after another, so warm-ups never overlap
            index_dir = args.folder / f"index-{e}-nb2"
            workers[e] = pw.Worker(pw.engine_argv(e, "serve", kargs, index_dir), pw.child_env(True),
                                   args.folder / f"{e}.log")
            workers[e].read()
        timed = pw.time_rounds(workers, cli.rounds)
        rss = {e: w.ask("rss") for e, w in workers.items()}  # after every timed query
        ours = workers["jaxir"]
        profile = ours.ask("profile")
        batch = {str(t): ours.ask(f"batch {t}") for t in (1, 2)}
        for w in workers.values():
            w.close()
        for e, res in timed.items():
            lat = np.asarray(res["latency_s"]) * 1e3
            n = len(exact_rows)
            recall = np.mean([len(set(r[:10]) & set(x[:10])) / 10
                              for r, x in zip(res["rows"][:n], exact_rows)])
            row = {"median_ms": float(np.median(lat)), "p99_ms": float(np.percentile(lat, 99)),
                   "search_rss_mb": rss[e]["rss_mb"], "search_peak_rss_mb": rss[e]["peak_rss_mb"],
                   "recall10_vs_exact": float(recall),
                   "recall_queries": n}
            if e == "jaxir":
                row["profile_ms"] = profile["ms_per_query"]
                row["qps"] = {t: b["queries"] / b["seconds"] for t, b in batch.items()}
            out.setdefault(e, {})[f"k{k}"] = row
    return out


def measure(name: str, folder: Path, cli, results: dict) -> None:
    if name in results and not (cli.redo or cli.rebuild):
        print(f"{name}: measured earlier (results.json); --redo to measure again", flush=True)
        return
    args = corpus_args(folder, cli)
    engines = ["jaxir"] + list(cli.peer_pythons)
    meta = json.loads((folder / "meta.json").read_text())
    tokens = int(np.load(folder / "doclens.npy").sum())
    entry = {"tokens": tokens, "docs": len(np.load(folder / "doclens.npy")),
             "shape": meta.get("synthetic", meta.get("shape")), "builds": {}}
    for e in engines:
        timeout = None if e == "jaxir" else cli.peer_timeout
        entry["builds"][e] = {k: v for k, v in pw.run_build(e, args, timeout).items()
                              if k != "index_dir"}
    index = PlaidIndex.load(folder / "index-jaxir-nb2", verify=False)  # what the codec made of it
    entry["index_shape"] = code_stats(np.split(np.asarray(index.codes), np.cumsum(index.doclens)[:-1]),
                                      len(index.codec.centroids))
    searchable = [e for e in engines if "build_s" in entry["builds"][e]]
    entry["search"] = search_all(searchable, args, cli)
    earlier = results.get(name, {})  # --redo with fewer engines: the others keep their earlier figures
    for e in set(earlier.get("builds", {})) - set(engines):
        entry["builds"][e] = earlier["builds"][e]
        if e in earlier.get("search", {}):
            entry["search"][e] = earlier["search"][e]
        entry.setdefault("from_an_earlier_run", []).append(e)
    results[name] = entry
    print(json.dumps({name: entry["search"]}, indent=1), flush=True)


ENGINE_STYLE = {"jaxir": ("tab:blue", "o"), "pylate": ("tab:orange", "s"), "fast-plaid": ("tab:green", "^")}


def plot(results: dict, folder: Path = PLOTS) -> list[Path]:
    """Latency (median solid, p99 dashed; k 10 and k 100) and memory against corpus size; the
    real SciFact point hollow, a dotted line of linear growth from the smallest synthetic point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    synthetic = sorted((n for n in results if n != "scifact"), key=lambda n: results[n]["tokens"])
    size = lambda n: results[n]["tokens"] / 1e6  # noqa: E731

    def series(ax, engine, value, **style):
        names = [n for n in synthetic if value(results[n]) is not None]
        color, marker = ENGINE_STYLE[engine]
        ax.plot([size(n) for n in names], [value(results[n]) for n in names], color=color,
                marker=marker, **style)
        if "scifact" in results and value(results["scifact"]) is not None:
            ax.plot(size("scifact"), value(results["scifact"]), marker=marker, color=color,
                    markerfacecolor="none", linestyle="none")
        return names

    def search(engine, k, stat):
        return lambda r: r["search"].get(engine, {}).get(f"k{k}", {}).get(stat)

    def axes_style(ax, title, ylabel):
        ax.set(xscale="log", yscale="log", xlabel="token vectors (millions; hollow: SciFact itself)",
               ylabel=ylabel, title=title)
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xticks([size(n) for n in synthetic], [f"{size(n):g}" for n in synthetic])
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        for n in synthetic:  # a peer with no index at a size: say so where its point would be
            for engine in engines:
                b = results[n]["builds"].get(engine, {})
                if "build_s" not in b and b:
                    why = "stopped" if "timeout_s" in b else "killed for memory" if "signal 9" in b["failed"] else "failed"
                    ax.annotate(f"{engine}: no index ({why})", (size(n), 0.03), xycoords=("data", "axes fraction"), va="bottom",
                                ha="right", fontsize=7, color=ENGINE_STYLE[engine][0], rotation=90)
        ax.legend(fontsize=8)

    folder.mkdir(parents=True, exist_ok=True)
    engines = [e for e in ENGINE_STYLE if any(e in r["builds"] for r in results.values())]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, k in zip(axes, KS):
        for engine in engines:
            names = series(ax, engine, search(engine, k, "median_ms"), label=f"{engine} median")
            series(ax, engine, search(engine, k, "p99_ms"), linestyle="--", alpha=0.6,
                   label=f"{engine} p99")
            if engine == "jaxir" and names:
                first = results[names[0]]["search"]["jaxir"][f"k{k}"]["median_ms"]
                xs = [size(n) for n in names]
                ax.plot(xs, [first * x / xs[0] for x in xs], ":", color="gray", label="linear growth")
        axes_style(ax, f"PLAID search latency, k = {k}, one thread", "ms per query")
    latency = folder / "search_scale_latency.png"
    fig.tight_layout()
    fig.savefig(latency, dpi=110)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for engine in engines:
        build = lambda stat: lambda r: r["builds"].get(engine, {}).get(stat)  # noqa: E731
        series(ax, engine, build("peak_rss_mb"), label=f"{engine} build peak RSS")
        series(ax, engine, lambda r: (r["builds"].get(engine, {}).get("disk_bytes") or 0) / 2**20 or None,
               linestyle="-.", alpha=0.7, label=f"{engine} index on disk")
        series(ax, engine, search(engine, 10, "search_rss_mb"), linestyle="--", alpha=0.5,
               label=f"{engine} search RSS")
    axes_style(ax, "PLAID memory", "MB")
    memory = folder / "search_scale_memory.png"
    fig.tight_layout()
    fig.savefig(memory, dpi=110)
    return [latency, memory]


def build_cell(b: dict) -> str:
    if "build_s" in b:
        return f"{b['build_s']:.0f}"
    return f"> {b['timeout_s']:.0f} (stopped)" if "timeout_s" in b else f"failed ({b['failed'].split(';')[0]})"


def print_table(results: dict) -> None:
    cols = ("corpus", "tokens", "engine", "build s", "build RSS MB", "B/token", "k", "median ms",
            "p99 ms", "recall@10", "search RSS MB", "q/s 1t", "q/s 2t")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for name in sorted(results, key=lambda n: results[n]["tokens"]):
        r = results[name]
        for e, b in r["builds"].items():
            for k in KS:
                s = r["search"].get(e, {}).get(f"k{k}")
                cells = [name, f"{r['tokens']:,}", e,
                         build_cell(b),
                         f"{b.get('peak_rss_mb', 0):,.0f}",
                         f"{b['disk_bytes'] / r['tokens']:.1f}" if "disk_bytes" in b else "-", str(k)]
                if s:
                    qps = s.get("qps", {})
                    cells += [f"{s['median_ms']:.2f}", f"{s['p99_ms']:.2f}",
                              f"{s['recall10_vs_exact']:.3f}", f"{s['search_rss_mb']:,.0f}",
                              f"{qps['1']:.0f}" if qps else "-", f"{qps['2']:.0f}" if qps else "-"]
                print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="1000000,4000000,16000000",
                        help="synthetic corpus sizes in token vectors, comma-separated ('' for none)")
    parser.add_argument("--peer-timeout", type=float, default=1800.0)
    parser.add_argument("--sample-queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_scale")
    parser.add_argument("--peers", type=pw.peer_list, default="pylate", help="pylate, fast-plaid (comma-separated)")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument("--redo", action="store_true",
                        help="search corpora in results.json again (builds kept)")
    parser.add_argument("--rebuild", action="store_true", help="build and search them again")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="where the two PNGs go")
    parser.add_argument("--batch-size", type=int, default=32, help="encoder batch (SciFact cache)")
    cli = parser.parse_args()
    cli.out.mkdir(parents=True, exist_ok=True)
    peers = [] if cli.skip_peer else cli.peers
    cli.peer_pythons = {p: ensure_peer_venv(PEERS[p][0], p) for p in peers}
    record = cli.out / "results.json"
    results = json.loads(record.read_text()) if record.is_file() else {}
    real = ensure_cache(argparse.Namespace(data=cli.data, max_docs=None, max_queries=None, random=False,
                                           batch_size=cli.batch_size, cache=ROOT / "runs" / "bench_plaid"))
    if not cli.skip_scifact:
        measure("scifact", real, cli, results)
        record.write_text(json.dumps(results, indent=1))
    if not (real / "index-jaxir-nb2").is_dir():  # the shape needs our index on the real vectors
        pw.run_build("jaxir", corpus_args(real, cli))
    shape = scifact_shape(real)
    for size in [int(s) for s in cli.sizes.split(",") if s]:
        folder = make_synthetic(cli.out, size, shape, real)
        measure(f"synthetic-{size / 1e6:g}M", folder, cli, results)
        record.write_text(json.dumps(results, indent=1))
    print_table(results)
    print("plots:", *plot(results, cli.plots))
    print(f"wrote {record}")


if __name__ == "__main__":
    main()
