"""One writer per path: the advisory lock `.NAME.lock` beside a target `NAME` (NumPy-free,
jax-free: the index runtime uses it).

The lock is an flock, released by the kernel when the holder dies, so a killed writer never
blocks others; the holder removes the lock file before it lets go, so none is left behind. Taking
it cleans up what a dead writer left (`jaxir.fs_aside.recover`). The lock file is opened without
following a symbolic link and used only if it is a regular file with no other hard link; jaxir
never truncates or writes anything else through that name.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import threading
import time
import warnings
from pathlib import Path

from jaxir.errors import names_file
from jaxir.fs_aside import NOFOLLOW, recover

LOCK_WAIT_S = None  # a second writer waits for the first as long as it lives (None: no limit)
_LOCAL = threading.local()  # per thread: {lock file: depth} held
_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


class LockTimeout(OSError):
    """Another live process kept writing the same path for longer than the wait allowed."""


class UnsafeLock(OSError):
    """The lock file's name is taken by something jaxir will not open or write (a symbolic link,
    a folder, a file with other hard links)."""


def _held() -> dict[str, int]:
    if not hasattr(_LOCAL, "held"):
        _LOCAL.held = {}
    return _LOCAL.held


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, *, wait_s: float | None = LOCK_WAIT_S, marker: str | None = None):
    """Hold the advisory lock of `path`'s writers (re-entrant within a thread; other threads and
    processes are excluded). A second writer says once on stderr whom it waits for, and waits
    while the holder lives (`wait_s`: at most that long, then `LockTimeout` naming the holder's
    pid). On entry an interrupted swap and dead writers' temps are cleaned up (`recover`); on exit
    the lock file is removed (while still locked, so a waiter sees it is stale and retries).
    `UnsafeLock` if the lock's name is a symbolic link or anything but a plain file."""
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
    fd = _lock(lock, path, wait_s)
    try:
        held[str(lock)] = 1
        try:
            recover(path, marker=marker)
            with names_file(path, temps=str(path.with_name(f".{path.name}.tmp-"))):  # a full disk names it
                yield path
        finally:
            held.pop(str(lock), None)
    finally:
        try:
            if _same_file(fd, lock):
                with contextlib.suppress(OSError):
                    os.unlink(lock)  # before the flock goes: no other writer holds this file
        finally:
            os.close(fd)  # releases the flock


def _unsafe(lock: Path, path: Path, what: str) -> UnsafeLock:
    return UnsafeLock(f"refusing to write {path}: its lock file {lock} {what} (jaxir only uses a "
                      "plain file there; remove it if you did not put it there)")


def _open_lock(lock: Path, path: Path) -> int:
    """The lock file, created or opened without following a link; refused unless it is a
    regular file with at most one name."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | NOFOLLOW, 0o644)
    except OSError as e:
        try:
            mode = os.lstat(lock).st_mode
        except OSError:
            raise e from None
        if stat.S_ISLNK(mode):
            raise _unsafe(lock, path, "is a symbolic link") from None
        if not stat.S_ISREG(mode):
            raise _unsafe(lock, path, "is not a regular file") from None
        raise
    st = os.fstat(fd)
    problem = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
               f"has {st.st_nlink} hard links" if st.st_nlink > 1 else None)
    if problem:
        os.close(fd)
        raise _unsafe(lock, path, problem)
    return fd


def _same_file(fd: int, lock: Path) -> bool:
    """Does the name `lock` still refer to the open file `fd` (not removed, not replaced)?"""
    try:
        named = os.lstat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _lock(lock: Path, path: Path, wait_s: float | None) -> int:
    """Open and flock the lock file; the file locked must still be the one the name refers to
    (its previous holder removes it before letting go): otherwise retry with the new one."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    said = False
    while True:
        fd = _open_lock(lock, path)
        try:
            said = _acquire(fd, lock, path, wait_s, deadline, said)
            if not _same_file(fd, lock):
                os.close(fd)
                continue
            if os.fstat(fd).st_nlink != 1:
                raise _unsafe(lock, path, "has other hard links")
            with contextlib.suppress(OSError):  # the pid is for people; a full disk only hides it
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise


def _acquire(fd: int, lock: Path, path: Path, wait_s: float | None, deadline: float | None,
             said: bool) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return said
        except OSError as e:
            if e.errno in _NO_FLOCK:  # e.g. a network file system without flock
                warnings.warn(f"{lock}: this file system has no flock ({e.strerror}); writing "
                              f"{path} unlocked", RuntimeWarning, stacklevel=5)
                return said
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
