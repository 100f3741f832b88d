"""The benchmarks' child-process plumbing (`benchmarks/harness/plaid_workers.py`): a peer build that dies (a
peer killed for memory at 16M token vectors) or hangs is a recorded outcome, not a crash that
loses the rest of a multi-hour run; ours dying stays an error."""
import argparse
import json
import sys
from pathlib import Path

import pytest

from benchmarks.harness import plaid_workers as pw


def _args(tmp_path, python_code: str) -> argparse.Namespace:
    script = tmp_path / "peer.py"
    script.write_text(python_code)
    return argparse.Namespace(folder=tmp_path, nbits=2, reuse_builds=True, peer_script=script)


@pytest.fixture
def fake_peer(monkeypatch):
    """engine_argv runs the test's script for every engine."""
    def argv(engine, mode, args, index_dir):
        return [sys.executable, str(args.peer_script)]
    monkeypatch.setattr(pw, "engine_argv", argv)


def test_a_dead_peer_build_is_recorded_and_reused(tmp_path, fake_peer):
    (tmp_path / "pylate.log").write_text("a line from an earlier run\n")
    args = _args(tmp_path, "import os, sys\nsys.stderr.write('loading 8 GB\\nout of memory\\n')\n"
                           "sys.stderr.flush()\nos._exit(137)\n")
    result = pw.run_build("pylate", args)
    assert "build_s" not in result and "exit status 137" in result["failed"]
    assert "out of memory" in result["failed"]  # the log's last line says why ...
    assert "earlier run" not in result["failed"]  # ... this child's line, not an earlier run's
    assert "failed" in json.loads((tmp_path / "build-pylate-nb2.json").read_text())
    args.peer_script.write_text("raise SystemExit('must not run again')\n")
    assert pw.run_build("pylate", args)["failed"] == result["failed"]  # reused, not rebuilt


def test_a_hung_peer_build_is_stopped(tmp_path, fake_peer):
    args = _args(tmp_path, "import time\ntime.sleep(60)\n")
    assert pw.run_build("pylate", args, timeout=0.5)["timeout_s"] == 0.5


def test_our_build_dying_raises(tmp_path, fake_peer):
    args = _args(tmp_path, "raise SystemExit(3)\n")
    with pytest.raises(pw.WorkerDied, match="exit status 3"):
        pw.run_build("jaxir", args)
    assert not (tmp_path / "build-jaxir-nb2.json").exists()


def test_a_build_that_answers_is_kept(tmp_path, fake_peer):
    answer = {"build_s": 1.5, "peak_rss_mb": 10.0, "disk_bytes": 400, "num_tokens": 10}
    args = _args(tmp_path, f"import json\nprint(json.dumps({answer!r}))\n")
    assert {k: v for k, v in pw.run_build("pylate", args).items() if k != "index_dir"} == answer
    assert json.loads((tmp_path / "build-pylate-nb2.json").read_text()) == answer  # and reused next time


def _engine_args(**kw) -> argparse.Namespace:
    base = dict(folder=Path("/c"), nbits=2, k=100, ncells=2, threshold=0.45, ndocs=1024, warmup=3,
                query_limit=7, search_threads=1, kmeans="numpy", mmap=True,
                peer_pythons={"pylate": "/py", "fast-plaid": "/fp"})
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("engine, mode", [("jaxir", "build"), ("jaxir", "serve"), ("jaxir", "exact"),
                                          ("pylate", "build"), ("pylate", "serve"),
                                          ("fast-plaid", "build"), ("fast-plaid", "serve")])
def test_every_command_line_parses_in_its_engines_script(engine, mode):
    """What the parent sends is what the child script reads: same knobs, folders and options."""
    import importlib

    argv = pw.engine_argv(engine, mode, _engine_args(fastplaid_probe=3, fastplaid_full=512), Path("/i"))
    assert argv[1] == "-m"  # run as a module from the repository root, in the peers' venvs too
    script = importlib.import_module(argv[2])
    got = script.arguments(argv[3:])
    assert (got.mode, got.cache, got.index_dir, got.nbits, got.k, got.warmup, got.query_limit) == \
        (mode, Path("/c"), Path("/i"), 2, 100, 3, 7)
    want = {"jaxir": (2, 0.45, 1024), "pylate": (2, 0.45, 1024), "fast-plaid": (3, 0.45, 512)}[engine]
    assert (got.ncells, got.threshold, got.ndocs) == want
    if engine == "jaxir":
        assert got.kmeans == "numpy" and got.mmap and argv[0] == sys.executable
    else:
        assert argv[0] == _engine_args().peer_pythons[engine]


def test_ours_runs_without_knobs_and_unknown_engines_are_refused():
    from benchmarks.harness.plaid_engine_jaxir import arguments

    got = arguments(["build", "--cache", "c", "--index-dir", "i"])
    assert (got.ncells, got.threshold, got.ndocs) == (None, None, None)  # PLAID's for k, in serve
    with pytest.raises(ValueError, match="no PLAID script for engine 'colbert-ai'"):
        pw.engine_argv("colbert-ai", "build", _engine_args(), Path("/i"))
    with pytest.raises(argparse.ArgumentTypeError, match="unknown peer"):
        pw.peer_list("pylate,colbert")
