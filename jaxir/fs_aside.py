"""jaxir's hidden folders beside a target `NAME`: naming them, stamping them as jaxir's own,
recognising them, and cleaning up after a writer that died (`recover`). NumPy-free, jax-free.

    .NAME.tmp-PID-HEX/       a writer's folder under construction (a file under construction is
                             NAME inside such a folder)
    .NAME.old-PID-HEX/       the previous NAME during a swap (`jaxir.fs.replace_folder`)

All sit in NAME's folder, so renames stay atomic. A temp or old folder is jaxir's only if it holds
the stamp `.jaxir-aside` (written by jaxir, a JSON record naming the folder itself, see `stamp`); a
name alone is never enough, so a folder someone else put there under such a name is never
restored, renamed or removed. The pid in a name is for people reading the folder, not for the
logic (pids are reused: in a container jaxir is often pid 1 on every run).

Temps and old copies are only made while holding NAME's lock (`jaxir.fs_lock.writer_lock`), so
whatever stamped one is there when the lock is taken, except this thread's own (`new_aside` ..
`release_aside`), was left by a writer that died.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path

# Open flags that never follow a symbolic link (and close on exec).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
STAMP = ".jaxir-aside"  # inside a temp or old folder: {"jaxir": "aside", "version": 1, "name": its name}
_STAMP_KIND, _STAMP_VERSION = "aside", 1
_LOCAL = threading.local()  # per thread: the temps and old copies it is writing (never cleaned up)


def _live() -> set[str]:
    if not hasattr(_LOCAL, "live"):
        _LOCAL.live = set()
    return _LOCAL.live


def new_aside(path: Path, kind: str) -> Path:
    """A fresh name `.NAME.KIND-PID-HEX` beside `path` (not created), this thread's until
    `release_aside`: `recover` leaves it alone meanwhile."""
    out = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    _live().add(str(out))
    return out


def release_aside(folder: Path) -> None:
    """`folder` (from `new_aside`) is no longer being written by this thread."""
    _live().discard(str(folder))


def stamp(folder: Path, name: str) -> None:
    """Mark `folder` as jaxir's temp or old folder that is (or is about to be) called `name`."""
    unstamp(folder)
    fd = os.open(folder / STAMP, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"jaxir": _STAMP_KIND, "version": _STAMP_VERSION, "name": name}, f)


def unstamp(folder: Path) -> None:
    """Remove `folder`'s stamp, if any (it is NAME itself again)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(folder / STAMP)


def _is_ours(p: Path) -> bool:
    """True if `p` is a real folder (not a link) holding jaxir's stamp naming `p` itself."""
    try:
        if not stat.S_ISDIR(os.lstat(p).st_mode):
            return False
        fd = os.open(p / STAMP, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
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


def siblings(path: Path, kind: str) -> list[Path]:
    """jaxir's own (stamped) `kind` folders beside `path`, except this thread's live ones."""
    prefix = f".{path.name}.{kind}-"
    try:
        return sorted(p for p in path.parent.iterdir()
                      if p.name.startswith(prefix) and str(p) not in _live() and _is_ours(p))
    except FileNotFoundError:
        return []


def recover(path: str | os.PathLike, *, marker: str | None = None) -> list[str]:
    """Finish or undo an interrupted swap at `path` and drop dead writers' temps; returns what
    was done (for logs and tests). A crash between a swap's two renames leaves no NAME but a
    complete, stamped old one (holding `marker`, when given): it is put back. Only jaxir's
    stamped folders are touched (`_is_ours`). Only correct while holding `writer_lock(path)`."""
    path, done = Path(path), []
    olds = siblings(path, "old")
    if not os.path.lexists(path):
        complete = [p for p in olds if marker is None or (p / marker).is_file()]
        if complete:  # the crash came between the two renames: roll back to the old one
            newest = max(complete, key=lambda p: p.stat().st_mtime)
            os.replace(newest, path)
            unstamp(path)
            done.append(f"restored {path} from {newest.name}")
            olds.remove(newest)
    elif not path.is_dir() or path.is_symlink():
        olds = []  # something else took NAME's place: keep the old copies for the user
    for p in olds + siblings(path, "tmp"):  # a completed swap's old copy; dead writers' temps
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed {p.name}")
    return done
