"""The benchmarks' child-process plumbing (`benchmarks/plaid_workers.py`): a peer build that dies (a
peer killed for memory at 16M token vectors) or hangs is a recorded outcome, not a crash that
loses the rest of a multi-hour run; ours dying stays an error."""
import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import plaid_workers as bp  # noqa: E402


def _args(tmp_path, python_code: str) -> argparse.Namespace:
    script = tmp_path / "peer.py"
    script.write_text(python_code)
    return argparse.Namespace(folder=tmp_path, nbits=2, reuse_builds=True, peer_script=script)


@pytest.fixture
def fake_peer(monkeypatch):
    """engine_argv runs the test's script for every engine."""
    def argv(engine, mode, args, index_dir):
        return [sys.executable, str(args.peer_script)]
    monkeypatch.setattr(bp, "engine_argv", argv)


def test_a_dead_peer_build_is_recorded_and_reused(tmp_path, fake_peer):
    args = _args(tmp_path, "import os, sys\nsys.stderr.write('loading 8 GB\\nout of memory\\n')\n"
                           "sys.stderr.flush()\nos._exit(137)\n")
    result = bp.run_build("pylate", args)
    assert "build_s" not in result and "exit status 137" in result["failed"]
    assert "out of memory" in result["failed"]  # the log's last line says why
    assert "failed" in json.loads((tmp_path / "build-pylate-nb2.json").read_text())
    args.peer_script.write_text("raise SystemExit('must not run again')\n")
    assert bp.run_build("pylate", args)["failed"] == result["failed"]  # reused, not rebuilt


def test_a_hung_peer_build_is_stopped(tmp_path, fake_peer):
    args = _args(tmp_path, "import time\ntime.sleep(60)\n")
    assert bp.run_build("pylate", args, timeout=0.5)["timeout_s"] == 0.5


def test_our_build_dying_raises(tmp_path, fake_peer):
    args = _args(tmp_path, "raise SystemExit(3)\n")
    with pytest.raises(bp.WorkerDied, match="exit status 3"):
        bp.run_build("jaxir", args)
    assert not (tmp_path / "build-jaxir-nb2.json").exists()


def test_a_build_that_answers_is_kept(tmp_path, fake_peer):
    answer = {"build_s": 1.5, "peak_rss_mb": 10.0, "disk_bytes": 400, "num_tokens": 10}
    args = _args(tmp_path, f"import json\nprint(json.dumps({answer!r}))\n")
    assert {k: v for k, v in bp.run_build("pylate", args).items() if k != "index_dir"} == answer
