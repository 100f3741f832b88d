"""Fault injection: writers killed with SIGKILL (at random moments and at every rename of the
swap), concurrent writers, and corrupted or edited index files. After each fault the previous good
state must be intact (or the new one complete), every answer returned must equal a fault-free
reference, and the next writer must succeed and leave no debris. The module's tally (faults
injected / survived / data lost) is printed at the end (`pytest -s tests/house/test_faults.py`).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jaxir
from jaxir.errors import IndexFormatError

ROOT = Path(jaxir.__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WORDS = [f"w{i}" for i in range(3000)]
QUERIES = ["w1 w2 w3", "w10 w200 w2999", "w7 w7 w77", "w123 w456"]

# Child: build a BM25 index of `data` at `out` with k1; KILL_AT=n sends SIGKILL to itself just
# before its n-th os.replace: 1 the built index into its stage folder, 2 the manifest stamp,
# 3 the old index moved aside, 4 the new one moved in (the old one is then only aside).
BUILD = """
import os, signal, sys
from pathlib import Path
data, out, k1, kill_at = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
if kill_at:
    real, calls = os.replace, [0]
    def replace(a, b):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(a, b)
    os.replace = replace
from jaxir.eval.beir import load_beir
from jaxir.retrievers.bm25 import BM25Retriever
from jaxir.pipeline.built_from import build_index
build_index(BM25Retriever(k1=k1), load_beir(data, split="train"), out)
"""

# Child: write a TREC run of `tag` at `path` `n` times (kill_at as above, on write_trec's rename).
WRITE_RUN = """
import os, signal, sys
path, tag, n, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kill_at:
    real = os.replace
    def replace(a, b):
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
from jaxir.eval.runs import write_trec
run = {f"q{i}": {f"{tag}-d{j}": float(100 - j) for j in range(50)} for i in range(200)}
for _ in range(n):
    write_trec(path, run, tag=tag)
"""

# Child: checkpoint steps 1 and 2 of a 64 MB state (killed from outside during step 2).
CHECKPOINT = """
import sys
import numpy as np
from jaxir.training.checkpoint import Checkpointer
store = Checkpointer(sys.argv[1], config={"x": 1}, keep=5, async_save=False)
step = int(sys.argv[2])
store.save(step, {"w": np.full((4096, 4096), float(step), np.float32)}, data_state={"seen": step})
store.wait()
print("saved", step, flush=True)
"""


@pytest.fixture(scope="module")
def tally():
    counts = {"faults injected": 0, "survived": 0, "data lost": 0}
    yield counts
    print("\nfault injection: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _child(script, *args, **kw):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _write_corpus(folder: Path, n_docs: int, seed: int) -> Path:
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(n_docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=40))}) + "\n")
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": q}) + "\n"
                                                  for i, q in enumerate(QUERIES)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(len(QUERIES))))
    return folder


def _answers(index_dir: Path):
    """(k1 recorded, top-10 of each query) of the index at index_dir, checksums verified."""
    from jaxir.index.bm25 import BM25Index
    from jaxir.index.manifest import read_manifest

    k1 = read_manifest(index_dir)["built_from"]["settings"]["k1"]
    hits = BM25Index.load(index_dir, verify=True).search_batch(QUERIES, 10)
    return k1, [(list(ids), np.round(np.asarray(s, np.float64), 5).tolist()) for ids, s in hits]


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus, and reference answers of fault-free indexes built with k1 1.2 (old) and 0.9 (new)."""
    root = tmp_path_factory.mktemp("faults")
    data = _write_corpus(root / "data", 6000, seed=0)
    refs = {}
    for k1 in (1.2, 0.9):
        out = root / f"ref-{k1}"
        t = time.perf_counter()
        child = _child(BUILD, data, out, k1, 0)
        assert child.wait() == 0, child.stderr.read()
        refs[k1] = (_answers(out), time.perf_counter() - t)
    return data, refs


def _check_survivor(target: Path, refs, tally, allowed=(1.2, 0.9)):
    """The index at target is one of the two complete versions and answers as its reference."""
    tally["faults injected"] += 1
    try:
        k1, answers = _answers(target)  # a reader finding a crashed swap restores the old index
    except IndexFormatError:
        tally["data lost"] += 1
        raise
    assert k1 in allowed and answers == refs[k1][0][1]
    tally["survived"] += 1
    return k1


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_index_build_killed_at_every_rename_keeps_the_old_index(corpus, tmp_path, tally):
    data, refs = corpus
    target = tmp_path / "idx"
    assert _child(BUILD, data, target, 1.2, 0).wait() == 0
    for kill_at in (1, 2, 3, 4):
        child = _child(BUILD, data, target, 0.9, kill_at)
        assert child.wait() == -signal.SIGKILL
        assert target.exists() == (kill_at != 4)  # 4: killed between the two renames
        assert _check_survivor(target, refs, tally, allowed=(1.2,)) == 1.2
    # A build killed into a new path leaves no index there, and the next one succeeds.
    fresh = tmp_path / "new"
    assert _child(BUILD, data, fresh, 0.9, 1).wait() == -signal.SIGKILL
    assert not fresh.exists()
    assert _child(BUILD, data, fresh, 0.9, 0).wait() == 0
    assert _answers(fresh) == refs[0.9][0]
    # The next writer cleaned every dead writer's temp and old folder.
    assert _child(BUILD, data, target, 0.9, 0).wait() == 0
    assert _answers(target) == refs[0.9][0] and _debris(tmp_path) == []


def test_index_build_killed_at_random_moments(corpus, tmp_path, tally):
    data, refs = corpus
    target = tmp_path / "idx"
    assert _child(BUILD, data, target, 1.2, 0).wait() == 0
    build_s = refs[0.9][1]
    rng = random.Random(1)
    for _ in range(8):
        child = _child(BUILD, data, target, rng.choice((1.2, 0.9)), 0)
        while child.poll() is None and not any(".idx.tmp-" in p.name for p in tmp_path.iterdir()):
            time.sleep(0.005)  # the build has started writing: from here on a kill can tear it
        time.sleep(rng.uniform(0.0, build_s / 2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        _check_survivor(target, refs, tally)
    assert _child(BUILD, data, target, 1.2, 0).wait() == 0
    assert _answers(target) == refs[1.2][0] and _debris(tmp_path) == []


def test_concurrent_index_writers(corpus, tmp_path, tally):
    """`jaxir index` into one new path: the first builds; three more with the same settings and
    one with other settings, started while it builds, wait for its lock; then the three reuse
    its index and the other is refused (no --force). The index is whole."""
    data, refs = corpus
    target = tmp_path / "idx"
    argv = [sys.executable, "-m", "jaxir.cli", "index", "--method", "bm25", "--data", str(data),
            "--split", "train", "--out", str(target), "--k1"]

    def start(k1):
        return subprocess.Popen([*argv, k1], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start("1.2")
    while first.poll() is None and not any(".idx.tmp-" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.005)
    same, other = [start("1.2") for _ in range(3)], start("0.9")
    outs = [p.communicate() for p in [first, *same]]
    assert [p.returncode for p in [first, *same]] == [0] * 4, outs
    assert "indexed" in outs[0][0] and all("reused" in o for o, _ in outs[1:])
    _, err = other.communicate()
    assert other.returncode == 2 and "--force" in err and "k1=1.2" in err
    tally["faults injected"] += 4
    assert _answers(target) == refs[1.2][0] and _debris(tmp_path) == []
    tally["survived"] += 4


def test_concurrent_and_killed_run_writers(tmp_path, tally):
    path = tmp_path / "run.trec"
    writers = [_child(WRITE_RUN, path, f"t{i}", 10, 0) for i in range(4)]
    assert [w.wait() for w in writers] == [0] * 4
    from jaxir.eval.runs import read_trec

    def whole(run):  # one writer's complete run, never a mix
        tags = {d.split("-")[0] for docs in run.values() for d in docs}
        return len(run) == 200 and len(tags) == 1 and all(len(d) == 50 for d in run.values())

    assert whole(read_trec(path))
    tally["faults injected"] += 4
    tally["survived"] += 4
    before = path.read_bytes()
    for _ in range(3):
        assert _child(WRITE_RUN, path, "killed", 1, 1).wait() == -signal.SIGKILL
        tally["faults injected"] += 1
        assert path.read_bytes() == before
        tally["survived"] += 1
    assert _child(WRITE_RUN, path, "next", 1, 0).wait() == 0
    assert whole(read_trec(path)) and _debris(tmp_path) == []


def test_corrupted_or_edited_index_is_refused_never_answered(corpus, tmp_path, tally):
    """Every single-byte flip in any file of an index, and every edit of its manifest, either
    raises IndexFormatError or (a flip that changes nothing read, e.g. JSON whitespace) gives the
    reference answers."""
    data, refs = corpus
    good = tmp_path / "good"
    assert _child(BUILD, data, good, 1.2, 0).wait() == 0
    rng = np.random.default_rng(0)
    files = sorted(good.iterdir())
    for trial in range(40):
        victim = tmp_path / f"bad{trial}"
        victim.mkdir()
        for f in files:
            (victim / f.name).write_bytes(f.read_bytes())
        f = victim / files[trial % len(files)].name
        raw = bytearray(f.read_bytes())
        at = int(rng.integers(len(raw)))
        raw[at] ^= 1 << int(rng.integers(8))
        f.write_bytes(bytes(raw))
        tally["faults injected"] += 1
        try:
            answers = _answers(victim)
        except IndexFormatError:
            tally["survived"] += 1
            continue
        assert answers == refs[1.2][0], f"{f.name} byte {at}: a wrong answer was returned"
        tally["survived"] += 1
    # Edited manifest fields, each refused by the digest (also a deleted digest).
    for field, value in [("method", "dense"), ("meta", {"n_docs": 1}), ("built_from", None),
                         ("manifest_sha256", None)]:
        victim = tmp_path / f"edit-{field}"
        victim.mkdir()
        for f in files:
            (victim / f.name).write_bytes(f.read_bytes())
        manifest = json.loads((victim / "manifest.json").read_text())
        if value is None and field == "manifest_sha256":
            del manifest[field]
            manifest["built_from"]["settings"]["k1"] = 0.9
        else:
            manifest[field] = value
        (victim / "manifest.json").write_text(json.dumps(manifest))
        tally["faults injected"] += 1
        with pytest.raises(IndexFormatError, match="edited"):
            _answers(victim)
        tally["survived"] += 1


def test_torn_metrics_append_is_dropped_on_resume(tmp_path, tally):
    from jaxir.training.logging import MetricsLogger, read_metrics

    path = tmp_path / "metrics.jsonl"
    log = MetricsLogger(path, enabled=True)
    log.log(1, {"loss": 2.0})
    with path.open("a") as f:  # what a kill in the middle of log() leaves
        f.write('{"step": 2, "split": "train", "lo')
    tally["faults injected"] += 1
    assert [r["step"] for r in read_metrics(path)] == [1]
    MetricsLogger(path, enabled=True).log(2, {"loss": 1.5})  # the resumed run
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    tally["survived"] += 1


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_checkpoint_write_killed_keeps_the_last_good_step(tmp_path, tally):
    directory = tmp_path / "ckpt"
    first = _child(CHECKPOINT, directory, 1)
    assert first.wait() == 0, first.stderr.read()
    rng = random.Random(2)
    landed = 0
    for _ in range(3):
        child = _child(CHECKPOINT, directory, 2)
        deadline = time.monotonic() + 60
        while not any(p.name.startswith("2") for p in directory.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.005)  # until step 2's write has begun, then kill inside it
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        tally["faults injected"] += 1
        from jaxir.training.checkpoint import Checkpointer

        store = Checkpointer(directory, config={"x": 1}, keep=5, async_save=False)
        step = store.latest_step()
        landed += step == 1
        state, data_state = store.restore({"w": np.zeros((4096, 4096), np.float32)}, step=step)
        w = np.asarray(state["w"])
        assert data_state == {"seen": step} and float(w.min()) == float(w.max()) == float(step)
        store.close()
        tally["survived"] += 1
        for p in directory.iterdir():  # back to step 1 alone for the next kill
            if p.name.startswith("2"):
                import shutil

                shutil.rmtree(p)
    assert landed >= 1  # at least one kill came before step 2 was complete
