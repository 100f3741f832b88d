"""Folder and file writes that a crash cannot leave half done, one writer per path
(NumPy-free, jax-free: the index runtime uses it).

Names beside a target `NAME` (all hidden, all in NAME's folder so renames stay atomic):

    .NAME.lock               advisory lock of NAME's writers (`writer_lock`; released by the
                             kernel when the holder dies, so a killed writer never blocks others)
    .NAME.tmp-PID-HEX        a writer's folder or file under construction
    .NAME.old-PID-HEX        the previous NAME during a swap (`replace_folder`)

A swap is rename(NAME -> old), rename(tmp -> NAME), remove(old). A crash between the two renames
leaves no NAME but a complete old one: `recover(NAME)` (run by every writer under the lock, and by
readers that find NAME missing) puts it back. Temps of dead processes are removed the same way.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from pathlib import Path

LOCK_WAIT_S = 600.0  # how long a second writer waits for the first before giving up
_HELD: dict[str, int] = {}  # locks this process holds (re-entrant: an index build locks, then its save)


class LockTimeout(OSError):
    """Another live process kept writing the same path for longer than the wait allowed."""


def _beside(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _owner_alive(name: str) -> bool:
    """Whether the process whose pid is embedded in a temp name (".X.tmp-PID-HEX") still runs."""
    try:
        pid = int(name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return False  # a name of the older pid-less form: its writer is long gone
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(path: Path, kind: str) -> list[Path]:
    prefix = f".{path.name}.{kind}-"
    try:
        return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))
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
    was done (for logs and tests). Call it holding `writer_lock(path)`."""
    path, done = Path(path), []
    olds = [p for p in _siblings(path, "old") if not _owner_alive(p.name)]
    if not path.exists():
        complete = [p for p in olds if marker is None or (p / marker).is_file()]
        if complete:  # the crash came between the two renames: roll back to the old one
            os.replace(complete[-1], path)
            done.append(f"restored {path} from {complete[-1].name}")
            olds.remove(complete[-1])
    for p in olds:  # the swap had completed; only the removal of the old one was lost
        _remove(p)
        done.append(f"removed {p.name}")
    for p in _siblings(path, "tmp"):
        if not _owner_alive(p.name):
            _remove(p)
            done.append(f"removed {p.name}")
    return done


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, *, wait_s: float = LOCK_WAIT_S, marker: str | None = None):
    """Hold the advisory lock of `path`'s writers. A second writer waits up to `wait_s` for the
    first (then `LockTimeout` naming the holder's pid); on entry, an interrupted swap and dead
    writers' temps are cleaned up (`recover`)."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    if _HELD.get(str(lock)):
        _HELD[str(lock)] += 1
        try:
            yield path
        finally:
            _HELD[str(lock)] -= 1
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise LockTimeout(f"{path} is being written by another process (pid {holder}, "
                                      f"lock {lock}); waited {wait_s:.0f}s") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[str(lock)] = 1
        recover(path, marker=marker)
        yield path
    finally:
        _HELD.pop(str(lock), None)
        os.close(fd)  # releases the flock


def recover_missing(path: str | os.PathLike, *, marker: str | None = None) -> bool:
    """For readers: if `path` is missing because a writer died mid-swap, put the old one back
    (under the writers' lock, so a live swap is waited for, not undone). True if it now exists."""
    path = Path(path)
    if path.exists() or not _siblings(path, "old"):
        return path.exists()
    with writer_lock(path, marker=marker):
        pass
    return path.exists()


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
    except OSError:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def temp_folder_beside(path: Path) -> Path:
    """A fresh hidden folder next to `path` (same file system, so the final rename is atomic),
    named with this process's pid so `recover` knows when its writer is dead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    tmp.mkdir()
    return tmp


def temp_file_beside(path: Path) -> Path:
    """A fresh hidden file name next to `path` (not created), of this process's own; it ends in
    `path`'s suffix, so writers that choose a format by it (".gz") choose the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    return tmp.with_name(tmp.name + path.suffix)


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
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file through `atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
