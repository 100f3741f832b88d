"""Folder and file writes that a crash cannot leave half done, one writer per path
(NumPy-free, jax-free: the index runtime uses it).

A writer of `NAME` holds NAME's lock (`jaxir.fs_lock.writer_lock`), builds the new content in a
stamped temp folder beside it (`temp_folder_beside`, `temp_file_beside`; the hidden names and
stamps are `jaxir.fs_aside`'s), makes it durable (`fsync`), and swaps it in: a file by one rename
(`atomic_output`, `write_text`), a folder by `replace_folder`. A folder swap is stamp(NAME),
rename(NAME -> old), rename(tmp -> NAME), remove(old); a crash between the two renames leaves no
NAME but a complete, stamped old one, and `jaxir.fs_aside.recover` (run by every writer when it
takes the lock, and by readers that find NAME missing: `recover_missing`) puts it back, then
removes the leftovers.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from jaxir.fs_aside import new_aside, release_aside, siblings, stamp, unstamp
from jaxir.fs_lock import writer_lock

# Where `jaxir eval/mine/rerank/search` and the sparse recipe's teachers build an index once and
# find it again, keyed by what it was built from (`jaxir.pipeline.built_from.index_for`).
INDEX_CACHE = "runs/indexes"


def fsync(path: str | os.PathLike) -> None:
    """Flush the file or folder `path` to disk (a folder: the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_missing(path: str | os.PathLike, *, marker: str | None = None) -> bool:
    """For readers: if `path` is missing because a writer died mid-swap, put the old one back
    (under the writers' lock, so a live swap is waited for, not undone). True if `path` is now
    a folder. Where the lock cannot be taken (a read-only mount) nothing is changed."""
    path = Path(path)
    if path.exists() or not siblings(path, "old"):
        return path.is_dir()
    try:
        with writer_lock(path, marker=marker):
            pass
    except OSError as e:
        if not isinstance(e, PermissionError) and e.errno != errno.EROFS:
            raise
        return False
    return path.is_dir()


def _check_replaceable(path: Path, *, marker: str, what: str, check: Callable[[Path], object] | None) -> None:
    """FileExistsError naming what is at `path` unless it is a real folder (not a link) holding
    `marker` that passes `check(path)`."""
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
        unstamp(path)  # after the rename: a temp killed before it still carries its stamp
        return
    _check_replaceable(path, marker=marker, what=what, check=check)
    old = new_aside(path, "old")
    try:
        stamp(path, old.name)  # before the rename: a crash after it leaves a recognisable old copy
        try:
            os.replace(path, old)
        except BaseException:
            unstamp(path)
            raise
        try:
            os.replace(tmp, path)
        except BaseException:  # also KeyboardInterrupt: never leave `path` missing in a live process
            os.replace(old, path)
            unstamp(path)
            raise
    finally:
        release_aside(old)
    unstamp(path)  # the temp's stamp (naming the temp, so never taken for NAME's own, if left)
    shutil.rmtree(old, ignore_errors=True)


def temp_folder_beside(path: Path) -> Path:
    """A fresh, stamped hidden folder next to `path` (same file system, so the final rename is
    atomic); make it while holding `writer_lock(path)`, so `recover` can tell it from a dead
    writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_aside(path, "tmp")
    tmp.mkdir()
    try:
        stamp(tmp, tmp.name)
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
            release_aside(tmp.parent)
            shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file through `atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
