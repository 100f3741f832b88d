"""The command line's exception boundary (`jaxir.cli.main`): whatever a command raises ends as
one line on stderr, never a traceback (`--debug`: the traceback first, then the line).

    rc 2    jaxir CMD: error: <what, naming the option, file and line where it knows them>
    rc 130  jaxir CMD: interrupted        (Ctrl-C; jaxir replaces its outputs whole, so what was
                                           on disk before is still there)

A full disk names the file being written (`jaxir.errors.names_file` marks the OSError of every
write under a `jaxir.fs_lock.writer_lock`). Standard library only.
"""
from __future__ import annotations

import errno
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)
# Less room than this left where a write without an errno stopped short: the disk was full.
_NO_ROOM_BYTES = 1 << 20


def run_command(fn: Callable[[], None], command: str, *, debug: bool = False) -> int:
    """fn() -> rc 0; an exception -> its one line on stderr and rc 2; Ctrl-C -> rc 130."""
    who = f"jaxir {command}" if command else "jaxir"
    try:
        fn()
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{who}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the boundary: a user sees one line, not a traceback
        if debug:
            traceback.print_exc()
        print(f"{who}: error: {error_line(e, debug=debug)}", file=sys.stderr)
        return 2
    return 0


def error_line(e: BaseException, *, debug: bool = False) -> str:
    """The one line a user reads for `e`: jaxir's own errors (and a missing file) as they say
    it, a full disk as `disk_full_line`, anything else with its type and a --debug hint; only
    the first line of a message that has several."""
    from jaxir.errors import JaxirError

    if isinstance(e, OSError) and (line := disk_full_line(e)) is not None:
        return line
    known = isinstance(e, (JaxirError, FileNotFoundError))
    first, *rest = str(e).strip().splitlines() or [""]
    detail = first if known else f"{type(e).__name__}: {first}"
    hint = "" if debug or (known and not rest) else " (rerun with --debug for the traceback)"
    return detail + (" ..." if rest else "") + hint


def disk_full_line(e: OSError) -> str | None:
    """"no space left on device writing FILE: ..." when `e` is a write that found its disk full
    (ENOSPC, EDQUOT, or a short write with no errno, NumPy's "N requested and M written", where
    the disk has no room left); None for any other OSError."""
    full = e.errno in FULL or (e.errno is None and e.filename is not None and _no_room(e.filename))
    if not full:
        return None
    where = f"writing {e.filename}" if e.filename else "(rerun with --debug to see which file)"
    return f"no space left on device {where}: free some space and rerun"


def _no_room(path: str | os.PathLike) -> bool:
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < _NO_ROOM_BYTES
    except OSError:
        return False
