"""The command line's exception boundary (issue 39 item 8): Ctrl-C ends with one line and rc 130
and leaves the previous output whole; a full disk is one line naming the file being written; a
file that is not UTF-8 is one line naming the file and line, whichever input it is."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxir.cli import main
from tests.toy_beir import write_toy_beir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def toy(tmp_path):
    return write_toy_beir(tmp_path / "toy")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _big_beir(root: Path, n_docs: int = 60_000) -> Path:
    """A corpus whose BM25 index takes seconds to build (random words)."""
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}x" for i in range(5000)])
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, row in enumerate(rng.integers(0, len(words), (n_docs, 30))):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(words[row])}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "w1x w2x"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")
    return root


def test_ctrl_c_is_one_line_rc_130_and_the_old_index_stays(toy, tmp_path):
    out = tmp_path / "idx"
    assert main(["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    big = _big_beir(tmp_path / "big")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "jaxir.cli", "index", "--method", "bm25", "--data", str(big),
                             "--out", str(out), "--force"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".idx.tmp-*")):  # the build has started (its folder beside --out)
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert stderr == "jaxir index: interrupted\n" and stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old index, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "idx", "toy"]  # no temp, no lock left


def test_a_full_disk_names_the_file_being_written(toy, tmp_path, capsys, monkeypatch):
    """NumPy says only "N requested and M written" (no errno, no file): the line names the index."""
    import jaxir.cli_errors
    import jaxir.index.array_files as array_files

    def short_write(file, *args, **kwargs):
        Path(file).write_bytes(b"\x93NUMPY")
        raise OSError("3235 requested and 1301 written")

    monkeypatch.setattr(array_files.np, "save", short_write)
    monkeypatch.setattr(jaxir.cli_errors, "_no_room", lambda path: True)  # what the full disk reports
    out = tmp_path / "idx"
    assert main(["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(out)]) == 2
    assert _one_error_line(capsys) == (f"jaxir index: error: no space left on device writing {out}: "
                                       "free some space and rerun\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # nothing half written left


def test_enospc_writing_a_run_names_it_and_keeps_the_old_run(toy, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r.trec"
    run.write_text("old\n")
    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "r.trec":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["eval", "--method", "bm25", "--data", str(toy), "--split", "train", "--cache",
                 str(tmp_path / "cache"), "--run", str(run)]) == 2
    assert _one_error_line(capsys).endswith(f"no space left on device writing {run}: free some space and rerun\n")
    assert run.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["cache", "r.trec", "toy"]


def _bad(path: Path, good: str, line: int) -> Path:
    """`good` with byte 0xe9 (Latin-1 é) added at the end of line `line`."""
    rows = good.encode().split(b"\n")
    rows[line - 1] += b"\xe9"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(rows))
    return path


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv"])
def test_a_beir_file_that_is_not_utf8_is_named_with_its_line(toy, tmp_path, capsys, name):
    _bad(toy / name, (toy / name).read_text(), 3)
    argv = ["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert f"{toy / name}:3: not UTF-8 (byte 0xe9) at column" in _one_error_line(capsys)


@pytest.mark.parametrize("which", ["--run", "--qrels"])
def test_score_names_the_run_or_qrels_line_that_is_not_utf8(tmp_path, capsys, which):
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\n")
    qrels = tmp_path / "q.tsv"
    qrels.write_text("q1 0 d1 1\nq1 0 d2 0\n")
    bad = _bad(tmp_path / "bad", (run if which == "--run" else qrels).read_text(), 2)
    files = {"--run": str(run), "--qrels": str(qrels), which: str(bad)}
    assert main(["score", *[x for kv in files.items() for x in kv]]) == 2
    assert f"{bad}:2: not UTF-8 (byte 0xe9)" in _one_error_line(capsys)


def _teacher_scores(path):
    from jaxir.data.tuples import TeacherScores

    TeacherScores(path)


def _mined(path):
    from jaxir.data.mine import read_mined

    list(read_mined(path))


def _pseudo_queries(path):
    from jaxir.recipes.i3 import load_pseudo_queries

    load_pseudo_queries(path, ["d1"])


def _msmarco_tsv(path):
    from jaxir.recipes.nway_data import _read_tsv

    _read_tsv(path)


def _idf(path):
    from jaxir.text.idf import load_idf

    load_idf(path, ["a", "b"])


def _export(path):
    from jaxir.export import read_rank_features

    list(read_rank_features(path))


@pytest.mark.parametrize("read, good", [
    (_teacher_scores, '{"qid": "q1", "scores": {"d1": 1.0}}\n{"qid": "q2", "scores": {"d1": 1.0}}\n'),
    (_mined, '{"qid": "q1", "positives": ["d1"], "candidates": [["d2", 1.0]]}\n'
             '{"qid": "q2", "positives": ["d1"], "candidates": [["d2", 1.0]]}\n'),
    (_pseudo_queries, '{"doc_id": "d1", "queries": ["a"]}\n{"doc_id": "d1", "queries": ["b"]}\n'),
    (_msmarco_tsv, "1\tone\n2\ttwo\n"),
    (_idf, '{"a": 1.0,\n "b": 2.0}\n'),
    (_export, '{"id": "d1", "sparse_embedding": {"a": 1.0}}\n{"id": "d2", "sparse_embedding": {"b": 1.0}}\n'),
])
def test_every_input_file_names_the_line_that_is_not_utf8(tmp_path, read, good):
    from jaxir.errors import DataError

    bad = _bad(tmp_path / "input", good, 2)
    with pytest.raises(DataError, match=r"input:2: not UTF-8 \(byte 0xe9\) at column \d+"):
        read(bad)


def test_a_message_of_several_lines_becomes_one(tmp_path, capsys, monkeypatch):
    import jaxir.cli as cli

    def boom(args):
        raise RuntimeError("first line\nsecond line\nthird")

    monkeypatch.setattr(cli, "cmd_compare", boom)
    run = tmp_path / "r.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    assert main(["compare", "--run", str(run), "--reference", str(run)]) == 2
    assert _one_error_line(capsys) == ("jaxir compare: error: RuntimeError: first line ... "
                                       "(rerun with --debug for the traceback)\n")
