"""One writer per path: the advisory lock (waits, times out naming the holder, re-entrant, freed
when its holder dies), the recoverable swap and the cleanup of dead writers' temps."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jaxir
from jaxir.fs import atomic_output, recover_missing, replace_folder, temp_folder_beside
from jaxir.fs_aside import recover, stamp
from jaxir.fs_lock import LockTimeout, writer_lock

ENV = {**os.environ, "PYTHONPATH": str(Path(jaxir.__file__).resolve().parents[1])}
HOLD = """
import sys, time
from jaxir.fs_lock import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(path, seconds):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], env=ENV,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_writer_waits_then_gets_the_lock(tmp_path):
    target = tmp_path / "out.trec"
    holder = _holder(target, 1.0)
    t = time.monotonic()
    with writer_lock(target, wait_s=30):
        waited = time.monotonic() - t
    holder.wait()
    assert waited > 0.3


def test_lock_timeout_names_the_holder(tmp_path):
    target = tmp_path / "idx"
    holder = _holder(target, 30)
    try:
        with pytest.raises(LockTimeout, match=f"pid {holder.pid}"):
            with writer_lock(target, wait_s=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_the_lock(tmp_path):
    target = tmp_path / "idx"
    holder = _holder(target, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with writer_lock(target, wait_s=2):
        pass


def test_lock_is_reentrant_within_a_process(tmp_path):
    target = tmp_path / "idx"
    with writer_lock(target, wait_s=0.2):
        with writer_lock(target, wait_s=0.2):
            pass
        with writer_lock(target, wait_s=0.2):
            pass


def _folder(path: Path, text: str, marker="manifest.json", stamped=False) -> Path:
    path.mkdir()
    (path / marker).write_text(text)
    if stamped:  # as jaxir's own swap or temp folder (a planted one has no stamp)
        stamp(path, path.name)
    return path


@pytest.mark.parametrize("pid", [1, "own"], ids=["pid-1", "own-pid"])  # ids: the same in every worker
def test_recover_rolls_back_a_swap_cut_between_its_renames(tmp_path, pid):
    """Whatever pid the dead writer had (pid 1 in a container, even this process's own pid)."""
    pid = os.getpid() if pid == "own" else pid
    target = tmp_path / "idx"
    old = _folder(tmp_path / f".idx.old-{pid}-deadbeef", "old", stamped=True)
    assert not target.exists()
    assert recover_missing(target, marker="manifest.json")
    assert (target / "manifest.json").read_text() == "old" and not old.exists()


def test_recover_finishes_a_completed_swap_and_drops_dead_temps(tmp_path):
    target = _folder(tmp_path / "idx", "new")
    _folder(tmp_path / f".idx.old-{os.getpid()}-deadbeef", "old", stamped=True)
    _folder(tmp_path / ".idx.tmp-1-cafe0000", "half", stamped=True)
    mine = temp_folder_beside(target)  # this thread's own temp, still being written
    done = recover(target, marker="manifest.json")
    assert len(done) == 2 and (target / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["idx", mine.name])


def test_threads_of_one_process_are_excluded_too(tmp_path):
    import threading

    target, order = tmp_path / "idx", []
    inside = threading.Event()

    def first():
        with writer_lock(target):
            inside.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with writer_lock(target):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_replace_folder_keeps_a_foreign_folder(tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    tmp = _folder(tmp_path / "built", "x")
    with pytest.raises(FileExistsError, match="not an index"):
        replace_folder(tmp, target, marker="manifest.json", what="an index")
    assert (target / "keep.txt").read_text() == "mine"


def test_atomic_output_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "docs.jsonl.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.name.endswith(".gz")  # same suffix: gzip writers pick the same format
            tmp.write_text("half")
            raise RuntimeError("a bad document")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl.gz"]  # no temp, no lock
