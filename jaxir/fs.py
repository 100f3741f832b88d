"""Folder writes that a crash cannot leave half done (NumPy-free, jax-free: the index uses it)."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_folder(tmp: Path, path: Path, *, marker: str, what: str) -> None:
    """Rename the finished folder `tmp` to `path`. An existing `path` must hold `marker` (so a
    user's unrelated folder is never deleted); it is swapped out and removed only after the new
    folder is in place, and put back if the swap fails."""
    if not path.exists():
        os.replace(tmp, path)
        return
    if not (path / marker).is_file():
        raise FileExistsError(f"refusing to replace {path}: it exists and is not {what} (no {marker})")
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def temp_folder_beside(path: Path) -> Path:
    """A fresh hidden folder next to `path` (same file system, so the final rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    return tmp
