"""Folder and file writes that a crash cannot leave half done, one writer per path
(NumPy-free, jax-free: the index runtime uses it).

Names beside a target `NAME` (all hidden, all in NAME's folder so renames stay atomic):

    .NAME.lock               advisory lock of NAME's writers (`writer_lock`; released by the
                             kernel when the holder dies, so a killed writer never blocks others)
    .NAME.tmp-PID-HEX        a writer's folder or file under construction
    .NAME.old-PID-HEX        the previous NAME during a swap (`replace_folder`)

Temps and old copies are only made while holding NAME's lock, so whatever is there when the lock
is taken (except this thread's own, still being written) was left by a writer that died. A swap is
rename(NAME -> old), rename(tmp -> NAME), remove(old); a crash between the two renames leaves no
NAME but a complete old one, and `recover(NAME)` (run by every writer when it takes the lock, and
by readers that find NAME missing) puts it back, then removes the leftovers. The pid in a name is
for people reading the folder, not for the logic (pids are reused: in a container jaxir is often
pid 1 on every run).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

LOCK_WAIT_S = None  # a second writer waits for the first as long as it lives (None: no limit)
_LOCAL = threading.local()  # per thread: {lock file: depth} held, and the temps being written
_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)

# Where `jaxir eval/mine/rerank/search` and the sparse recipe's teachers build an index once and
# find it again, keyed by what it was built from (`jaxir.retrievers.built_from.index_for`).
INDEX_CACHE = "runs/indexes"


class LockTimeout(OSError):
    """Another live process kept writing the same path for longer than the wait allowed."""


def _held() -> dict[str, int]:
    if not hasattr(_LOCAL, "held"):
        _LOCAL.held, _LOCAL.live = {}, set()
    return _LOCAL.held


def _live() -> set[str]:
    _held()
    return _LOCAL.live


def _beside(path: Path, kind: str, suffix: str = "") -> Path:
    out = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")
    _live().add(str(out))
    return out


def _siblings(path: Path, kind: str) -> list[Path]:
    prefix = f".{path.name}.{kind}-"
    try:
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix) and str(p) not in _live())
    except FileNotFoundError:
        return []


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def recover(path: str | os.PathLike, *, marker: str | None = None) -> list[str]:
    """Finish or undo an interrupted swap at `path` and drop dead writers' temps; returns what
    was done (for logs and tests). Only correct while holding `writer_lock(path)`."""
    path, done = Path(path), []
    olds = _siblings(path, "old")
    if not path.exists():
        complete = [p for p in olds if marker is None or (p / marker).is_file()]
        if complete:  # the crash came between the two renames: roll back to the old one
            newest = max(complete, key=lambda p: p.stat().st_mtime)
            os.replace(newest, path)
            done.append(f"restored {path} from {newest.name}")
            olds.remove(newest)
    for p in olds + _siblings(path, "tmp"):  # a completed swap's old copy; dead writers' temps
        _remove(p)
        done.append(f"removed {p.name}")
    return done


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, *, wait_s: float | None = LOCK_WAIT_S, marker: str | None = None):
    """Hold the advisory lock of `path`'s writers (re-entrant within a thread; other threads and
    processes are excluded). A second writer says once on stderr whom it waits for, and waits
    while the holder lives (`wait_s`: at most that long, then `LockTimeout` naming the holder's
    pid). On entry an interrupted swap and dead writers' temps are cleaned up (`recover`)."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    held = _held()
    if held.get(str(lock)):
        held[str(lock)] += 1
        try:
            yield path
        finally:
            held[str(lock)] -= 1
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, lock, path, wait_s)
        held[str(lock)] = 1
        try:
            recover(path, marker=marker)
            yield path
        finally:
            held.pop(str(lock), None)
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, lock: Path, path: Path, wait_s: float | None) -> None:
    deadline = None if wait_s is None else time.monotonic() + wait_s
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno in _NO_FLOCK:  # e.g. a network file system without flock
                warnings.warn(f"{lock}: this file system has no flock ({e.strerror}); writing "
                              f"{path} unlocked", RuntimeWarning, stacklevel=4)
                return
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(f"{path} is being written by another process (pid {holder}, "
                              f"lock {lock}); waited {wait_s:.0f}s")
        if not said:
            print(f"waiting for pid {holder} to finish writing {path} ...", file=sys.stderr, flush=True)
            said = True
        time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def recover_missing(path: str | os.PathLike, *, marker: str | None = None) -> bool:
    """For readers: if `path` is missing because a writer died mid-swap, put the old one back
    (under the writers' lock, so a live swap is waited for, not undone). True if `path` is now
    a folder. Where the lock cannot be taken (a read-only mount) nothing is changed."""
    path = Path(path)
    if path.exists() or not _siblings(path, "old"):
        return path.is_dir()
    try:
        with writer_lock(path, marker=marker):
            pass
    except PermissionError:
        return False
    except OSError as e:
        if e.errno != errno.EROFS:
            raise
        return False
    return path.is_dir()


def replace_folder(tmp: Path, path: Path, *, marker: str, what: str) -> None:
    """Rename the finished folder `tmp` to `path`. An existing `path` must hold `marker` (so a
    user's unrelated folder is never deleted); it is swapped out and removed only after the new
    folder is in place, and put back if the swap fails (or by `recover` if the process dies)."""
    if not path.exists():
        os.replace(tmp, path)
        return
    if not (path / marker).is_file():
        raise FileExistsError(f"refusing to replace {path}: it exists and is not {what} (no {marker})")
    old = _beside(path, "old")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave `path` missing in a live process
        os.replace(old, path)
        raise
    finally:
        _live().discard(str(old))
    shutil.rmtree(old, ignore_errors=True)


def temp_folder_beside(path: Path) -> Path:
    """A fresh hidden folder next to `path` (same file system, so the final rename is atomic);
    make it while holding `writer_lock(path)`, so `recover` can tell it from a dead writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    tmp.mkdir()
    return tmp


def temp_file_beside(path: Path) -> Path:
    """A fresh hidden file name next to `path` (not created), of this process's own; it ends in
    `path`'s suffix, so writers that choose a format by it (".gz") choose the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _beside(path, "tmp", path.suffix)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temp path beside `path` to write the whole output to; it replaces `path` only when
    the block completes (an error or a kill leaves the previous file), one writer at a time."""
    path = Path(path)
    with writer_lock(path):
        tmp = temp_file_beside(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            _live().discard(str(tmp))
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file through `atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
