"""Reading one index folder whole while writers may swap it (NumPy-free).

A published index folder is never changed in place (an update writes a new folder and
`jaxir.fs.replace_folder` swaps it in; the old one is removed only after that). A reader opens the
folder once and reads every file through that handle (`read_folder`, `open_in`), so it reads one
folder's files, whatever is renamed meanwhile: the old index or the new one, whole. If the read
fails and the path no longer names the folder it opened (a swap took it away, and may have
removed its files before they were opened), the read is retried on the folder now there, at most
`READ_RETRIES` times; a failure while the path still names the same folder is the index's own
(damage in place) and is reported as it is.
"""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import IndexFormatError
from ..fs import recover_missing

READ_RETRIES = 8  # a reader whose folder was swapped away mid-read starts again at most this often
_RETRY_SLEEP_S = 0.005  # times the try number
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_T = TypeVar("_T")


def _open_folder(path: Path, marker: str) -> int:
    """A descriptor of the folder `path` names now (a folder missing because a writer died
    mid-swap is first put back, see `recover_missing`; `marker` is the file a complete one holds)."""
    for _ in range(READ_RETRIES + 1):
        try:
            return os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            if not recover_missing(path, marker=marker):
                break
        except NotADirectoryError:
            break
    raise IndexFormatError(f"no index folder at {path}")


def _replaced(path: Path, folder: int) -> bool:
    """Does `path` no longer name the folder open as `folder`? (Its inode cannot be reused while
    it is open, so a different or missing one means a writer swapped it out.)"""
    mine = os.fstat(folder)
    try:
        now = os.stat(path)
    except OSError:
        return True
    return (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino)


def read_folder(path: Path, read: Callable[[int], _T], *, marker: str) -> _T:
    """`read(folder)` on one opened folder of `path` (a descriptor); started again on the folder
    `path` names now when it fails because a writer swapped the folder away while it was read."""
    for attempt in range(READ_RETRIES + 1):
        if attempt:
            time.sleep(_RETRY_SLEEP_S * attempt)
        folder = _open_folder(path, marker)
        try:
            return read(folder)
        except (IndexFormatError, OSError):
            if not _replaced(path, folder):
                raise  # the folder is still the one there: its own error, not a swap's
        finally:
            os.close(folder)
    raise IndexFormatError(f"{path} was replaced {READ_RETRIES + 1} times while it was read (a writer "
                           "keeps swapping it): try again when it is done")


def open_in(folder: int, name: str) -> int | None:
    """A read descriptor of the regular file `name` in the open `folder` (None if there is none)."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0), dir_fd=folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd
