"""The benchmarks' side of the engines' child processes: their command lines and environments,
the one-JSON-line protocol (`Worker`), builds in fresh processes (`run_build`, a peer's failure or
timeout recorded, not raised) and timed rounds that alternate between engines (`time_rounds`).
Each engine's own side is its module: `plaid_engine_jaxir`, `plaid_peer_pylate`, `plaid_peer_fastplaid`,
each started as `PYTHON -m benchmarks.harness.<module>` with the repository root as its working
directory (so `benchmarks` imports with no path set up, in the peers' environments too, where
jaxir is not installed).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import ROOT
from benchmarks.harness.peer_venv import PEER_VENV

OUR_SCRIPT = "benchmarks.harness.plaid_engine_jaxir"  # modules, run as `python -m` from ROOT
PEER_SCRIPTS = {"pylate": "benchmarks.harness.plaid_peer_pylate",
                "fast-plaid": "benchmarks.harness.plaid_peer_fastplaid"}
FASTPLAID_PROBE, FASTPLAID_FULL = 8, 4096  # fast-plaid's search defaults (n_ivf_probe, n_full_scores)
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def search_threads(n: int) -> dict:
    """The BLAS/OpenMP thread settings of a search process (torch threads are set apart)."""
    return dict.fromkeys(THREAD_VARS, str(n))


def child_env(search: bool, threads: int = 1) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TORCH_EXTENSIONS_DIR"] = str(PEER_VENV / "torch_extensions")
    return {**env, **search_threads(threads)} if search else env


def peer_list(text: str) -> list[str]:
    """--peers "pylate,fast-plaid" -> the names, each one a peer with a PLAID script (argparse type)."""
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEER_SCRIPTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {unknown}; peers: {', '.join(PEER_SCRIPTS)}")
    return names


def engine_argv(engine: str, mode: str, args, index_dir: Path) -> list[str]:
    """The command line of `engine`'s child script in `mode` (build, serve, or ours' exact)."""
    if engine != "jaxir" and engine not in PEER_SCRIPTS:
        raise ValueError(f"no PLAID script for engine {engine!r}; engines: jaxir, {', '.join(PEER_SCRIPTS)}")
    knobs = {"ncells": args.ncells, "threshold": args.threshold, "ndocs": args.ndocs}
    if engine == "fast-plaid":  # its own knobs (it has no threshold); its defaults unless set
        knobs.update(ncells=getattr(args, "fastplaid_probe", FASTPLAID_PROBE),
                     ndocs=getattr(args, "fastplaid_full", FASTPLAID_FULL))
    argv = [mode, "--cache", str(args.folder), "--index-dir", str(index_dir), "--nbits", str(args.nbits),
            "--k", str(args.k), "--warmup", str(args.warmup),
            *[a for name, v in knobs.items() for a in (f"--{name}", str(v))]]
    if getattr(args, "query_limit", None):
        argv += ["--query-limit", str(args.query_limit)]
    if engine in PEER_SCRIPTS:
        threads = [] if mode == "build" else ["--threads", str(args.search_threads)]
        return [str(args.peer_pythons[engine]), "-m", PEER_SCRIPTS[engine], *argv, *threads]
    mmap = ["--mmap"] if getattr(args, "mmap", False) else []
    return [sys.executable, "-m", OUR_SCRIPT, *argv, "--kmeans", args.kmeans, *mmap]


def script_and_mode(argv: list[str]) -> list[str]:
    """[script or module name, mode] of a child's command line (`python -m M mode ...` or `python S mode`)."""
    rest = argv[2:] if argv[1:2] == ["-m"] else argv[1:]
    return [Path(rest[0]).name, *rest[1:2]] if rest else []


class WorkerDied(RuntimeError):
    """A worker process ended without answering."""


class Worker:
    """A child process speaking the one-JSON-line-per-request protocol; stderr goes to `log`."""

    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        self.log_start = log.stat().st_size if log.is_file() else 0  # this child's part of the log
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
            with self.log.open("rb") as f:
                f.seek(self.log_start)
                lines = f.read().decode(errors="replace").strip().splitlines() or ["(nothing)"]
            why = "killed by signal 9, e.g. for memory" if rc == -9 else f"exit status {rc}"
            what = " ".join(script_and_mode(self.proc.args))
            raise WorkerDied(f"{what}: {why}; last line of {self.log}: {lines[-1][:300]}")
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
