"""Folder and file writes that a crash cannot leave half done, one writer per path
(NumPy-free, jax-free: the index runtime uses it).

Names beside a target `NAME` (all hidden, all in NAME's folder so renames stay atomic):

    .NAME.lock               advisory lock of NAME's writers (`writer_lock`; released by the
                             kernel when the holder dies, so a killed writer never blocks others;
                             removed by the holder before it lets go, so none is left behind)
    .NAME.tmp-PID-HEX/       a writer's folder under construction (a file under construction is
                             NAME inside such a folder)
    .NAME.old-PID-HEX/       the previous NAME during a swap (`replace_folder`)

A temp or old folder is jaxir's only if it holds the stamp `.jaxir-aside` (written by jaxir, a
JSON record naming the folder itself, see `_stamp`); a name alone is never enough, so a folder
someone else put there under such a name is never restored, renamed or removed.

Temps and old copies are only made while holding NAME's lock, so whatever stamped one is there when
the lock is taken (except this thread's own, still being written) was left by a writer that died.
A swap is stamp(NAME), rename(NAME -> old), rename(tmp -> NAME), remove(old); a crash between the
two renames leaves no NAME but a complete, stamped old one, and `recover(NAME)` (run by every
writer when it takes the lock, and by readers that find NAME missing) puts it back, then removes
the leftovers. The pid in a name is for people reading the folder, not for the logic (pids are
reused: in a container jaxir is often pid 1 on every run).

The lock file is opened without following a symbolic link and used only if it is a regular file
with no other hard link; jaxir never truncates or writes anything else through that name.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable

from jaxir.errors import names_file

LOCK_WAIT_S = None  # a second writer waits for the first as long as it lives (None: no limit)
_LOCAL = threading.local()  # per thread: {lock file: depth} held, and the temps being written
_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
STAMP = ".jaxir-aside"  # inside a temp or old folder: {"jaxir": "aside", "version": 1, "name": its name}
_STAMP_KIND, _STAMP_VERSION = "aside", 1

# Where `jaxir eval/mine/rerank/search` and the sparse recipe's teachers build an index once and
# find it again, keyed by what it was built from (`jaxir.pipeline.built_from.index_for`).
INDEX_CACHE = "runs/indexes"


class LockTimeout(OSError):
    """Another live process kept writing the same path for longer than the wait allowed."""


class UnsafeLock(OSError):
    """The lock file's name is taken by something jaxir will not open or write (a symbolic link,
    a folder, a file with other hard links)."""


def _held() -> dict[str, int]:
    if not hasattr(_LOCAL, "held"):
        _LOCAL.held, _LOCAL.live = {}, set()
    return _LOCAL.held


def _live() -> set[str]:
    _held()
    return _LOCAL.live


def _beside(path: Path, kind: str) -> Path:
    out = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _live().add(str(out))
    return out


def _stamp(folder: Path, name: str) -> None:
    """Mark `folder` as jaxir's temp or old folder that is (or is about to be) called `name`."""
    _unstamp(folder)
    fd = os.open(folder / STAMP, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"jaxir": _STAMP_KIND, "version": _STAMP_VERSION, "name": name}, f)


def _unstamp(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(folder / STAMP)


def _is_ours(p: Path) -> bool:
    """True if `p` is a real folder (not a link) holding jaxir's stamp naming `p` itself."""
    try:
        if not stat.S_ISDIR(os.lstat(p).st_mode):
            return False
        fd = os.open(p / STAMP, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        record = json.loads(os.read(fd, 4096).decode("utf-8"))
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)
    return record == {"jaxir": _STAMP_KIND, "version": _STAMP_VERSION, "name": p.name}


def _siblings(path: Path, kind: str) -> list[Path]:
    """jaxir's own (stamped) `kind` folders beside `path`, except this thread's live ones."""
    prefix = f".{path.name}.{kind}-"
    try:
        return sorted(p for p in path.parent.iterdir()
                      if p.name.startswith(prefix) and str(p) not in _live() and _is_ours(p))
    except FileNotFoundError:
        return []


def recover(path: str | os.PathLike, *, marker: str | None = None) -> list[str]:
    """Finish or undo an interrupted swap at `path` and drop dead writers' temps; returns what
    was done (for logs and tests). Only jaxir's stamped folders are touched (`_is_ours`). Only
    correct while holding `writer_lock(path)`."""
    path, done = Path(path), []
    olds = _siblings(path, "old")
    if not os.path.lexists(path):
        complete = [p for p in olds if marker is None or (p / marker).is_file()]
        if complete:  # the crash came between the two renames: roll back to the old one
            newest = max(complete, key=lambda p: p.stat().st_mtime)
            os.replace(newest, path)
            _unstamp(path)
            done.append(f"restored {path} from {newest.name}")
            olds.remove(newest)
    elif not path.is_dir() or path.is_symlink():
        olds = []  # something else took NAME's place: keep the old copies for the user
    for p in olds + _siblings(path, "tmp"):  # a completed swap's old copy; dead writers' temps
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed {p.name}")
    return done


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
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW, 0o644)
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
    except OSError as e:
        if not isinstance(e, PermissionError) and e.errno != errno.EROFS:
            raise
        return False
    return path.is_dir()


def replace_folder(tmp: Path, path: Path, *, marker: str, what: str,
                   check: Callable[[Path], object] | None = None) -> None:
    """Rename the finished folder `tmp` to `path`. An existing `path` is replaced only if it is a
    real folder (not a link) holding `marker` that passes `check(path)` (which raises, e.g. the
    loader's identity check, when it is not `what`): anything else is a FileExistsError naming
    what is there, and nothing is moved. The old folder is stamped and swapped out, removed only
    after the new folder is in place, and put back if the swap fails (or by `recover` if the
    process dies)."""
    if not os.path.lexists(path):
        os.replace(tmp, path)
        _unstamp(path)  # after the rename: a temp killed before it still carries its stamp
        return
    if path.is_symlink():
        raise FileExistsError(f"refusing to replace {path}: it is a symbolic link, not {what}")
    if not path.is_dir():
        raise FileExistsError(f"refusing to replace {path}: it is a file, not {what}")
    if not (path / marker).is_file():
        raise FileExistsError(f"refusing to replace {path}: it exists and is not {what} (no {marker})")
    if check is not None:
        try:
            check(path)
        except (ValueError, OSError) as e:
            raise FileExistsError(f"refusing to replace {path}: it is not {what} jaxir can read ({e}); "
                                  "remove it yourself if it is not needed") from None
    old = _beside(path, "old")
    try:
        _stamp(path, old.name)  # before the rename: a crash after it leaves a recognisable old copy
        try:
            os.replace(path, old)
        except BaseException:
            _unstamp(path)
            raise
        try:
            os.replace(tmp, path)
        except BaseException:  # also KeyboardInterrupt: never leave `path` missing in a live process
            os.replace(old, path)
            _unstamp(path)
            raise
    finally:
        _live().discard(str(old))
    _unstamp(path)  # the temp's stamp (naming the temp, so never taken for NAME's own, if left)
    shutil.rmtree(old, ignore_errors=True)


def temp_folder_beside(path: Path) -> Path:
    """A fresh, stamped hidden folder next to `path` (same file system, so the final rename is
    atomic); make it while holding `writer_lock(path)`, so `recover` can tell it from a dead
    writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    tmp.mkdir()
    try:
        _stamp(tmp, tmp.name)
    except BaseException:  # a full disk: unstamped, no later writer would remove it
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def temp_file_beside(path: Path) -> Path:
    """A fresh file name for writing `path`'s new content (not created): `path`'s own name
    inside a new `temp_folder_beside(path)`, so it ends in `path`'s suffix (writers that choose a
    format by it, ".gz", choose the same). Remove its folder (`.parent`) when done."""
    return temp_folder_beside(path) / path.name


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
            _live().discard(str(tmp.parent))
            shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file through `atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
