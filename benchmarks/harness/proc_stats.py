"""Process and folder measurements shared by the benchmark scripts and the peer's script.

Standard library only: the peers' scripts import this from their own virtual environments (as
`benchmarks.harness.proc_stats`: they run as `python -m` from the repository root, see `plaid_workers`).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent through fork + exec, so every child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set now (VmRSS), memory-mapped pages it has touched included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def reply(obj: dict, stream=None) -> None:
    """One JSON line (default: on stdout): the worker protocol between a benchmark and its child."""
    stream = stream or sys.stdout
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def serve_searches(queries, search, stream=None, handlers=None) -> None:
    """Worker loop: answer each "search" line on stdin with one timed pass over `queries`.

    `search(q) -> (doc rows, scores)` as sequences; replies {latency_s, rows, scores}. Any other
    line "NAME ARG" is answered by handlers[NAME](ARG) (a dict, sent as one JSON line; "rss" is
    built in: the current and peak resident set); an unknown name or "quit" ends the loop.
    """
    import time

    handlers = {"rss": lambda _: {"peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb()}, **(handlers or {})}
    for line in sys.stdin:
        name, _, arg = line.strip().partition(" ")
        if name in handlers:
            reply(handlers[name](arg), stream)
            continue
        if name != "search":
            break
        latencies, rows, scores = [], [], []
        for q in queries:
            start = time.perf_counter()
            pids, sc = search(q)
            latencies.append(time.perf_counter() - start)
            rows.append([int(p) for p in pids])
            scores.append([float(s) for s in sc])
        reply({"latency_s": latencies, "rows": rows, "scores": scores}, stream)


def engine_arguments(description: str, *, knobs: dict, modes=("build", "serve"), add=None,
                     argv=None) -> argparse.Namespace:
    """The command line every engine's child script takes (a mode, the cache and index folders,
    the benchmark's knobs); `knobs` = {"ncells": (default, help), "threshold": ..., "ndocs": ...},
    a default of None making the option required, one of "" leaving it None (the engine's own
    default for k); `add(parser)` adds an engine's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("mode", choices=modes)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    for name, (default, help_text) in knobs.items():
        kind = float if name == "threshold" else int
        parser.add_argument(f"--{name}", type=kind, default=None if default == "" else default, required=default is None,
                            help=help_text)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--query-limit", type=int, default=None, help="time the first N queries only")
    if add is not None:
        add(parser)
    return parser.parse_args(argv)
