"""Versioned on-disk index format: `manifest.json` + one `.npy` per array, memory-mapped on load.

Layout of an index folder::

    manifest.json   what it holds and how it was built (`jaxir.index.manifest`)
    <name>.npy      one per array (`jaxir.index.array_files`)

`save_index` writes everything into a temporary folder beside the target, fsyncs it, and only then
moves it into place, so a crash never leaves a half-written index under the target name.
`load_index` checks version, method, model fingerprint, file sizes and headers (and checksums when
`verify`) before handing out arrays, and raises `IndexFormatError` naming the file on any mismatch.
It reads one folder whole, old or new, while a writer swaps it (`jaxir.index.folder_reads`).
"""
from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError
from ..fs import fsync, replace_folder, temp_folder_beside
from ..fs_lock import writer_lock
from .array_files import check_array, link_array, load_array, write_array
from .folder_reads import read_folder
from .manifest import (DIGEST, FORMAT_VERSION, MANIFEST, check_identity, manifest_digest, read_manifest,
                       read_manifest_in)


@dataclass(frozen=True)
class StoredIndex:
    """A loaded index: `arrays` (memory-mapped when loaded with mmap), the manifest and its meta."""

    path: Path
    arrays: dict[str, np.ndarray]
    manifest: dict

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta", {})


def save_index(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    *,
    method: str,
    model_fingerprint: str,
    meta: dict | None = None,
    kept: StoredIndex | None = None,
    fields: dict | None = None,
) -> Path:
    """Write `arrays` and a manifest to the folder `path` (atomically replacing an old index).

    kept: the index being replaced, when this is an update of it: an array that is the very
    object loaded from it (unchanged) is hard-linked from its file with its manifest entry
    instead of written again, so hiding a document rewrites one small array, not the index.
    fields: extra top-level manifest entries (e.g. `built_from`), in the same atomic write."""
    path = Path(path)
    checked = {name: check_array(name, a) for name, a in arrays.items()}
    manifest = {
        "format_version": FORMAT_VERSION,
        "method": method,
        "model_fingerprint": model_fingerprint,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "meta": meta or {},
        "arrays": {},
        **(fields or {}),
    }
    json.dumps(manifest)  # fail on non-JSON meta before touching the disk
    reuse = {} if kept is None else {name: kept for name, a in arrays.items()
                                     if kept.arrays.get(name) is a}
    with writer_lock(path, marker=MANIFEST):
        _write_folder(path, checked, manifest, reuse)
    return path


def _write_folder(path: Path, checked: dict, manifest: dict, reuse: dict[str, StoredIndex]) -> None:
    tmp = temp_folder_beside(path)
    try:
        for name, array in checked.items():
            manifest["arrays"][name] = (
                link_array(tmp, reuse[name].manifest["arrays"][name], reuse[name].path) if name in reuse
                else write_array(tmp, name, array))
        manifest[DIGEST] = manifest_digest(manifest)
        text = json.dumps(manifest, indent=1)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        fsync(tmp / MANIFEST)
        fsync(tmp)
        try:
            replace_folder(tmp, path, marker=MANIFEST, what="an index folder", check=read_manifest)
        except FileExistsError as e:
            raise IndexFormatError(str(e)) from None
        fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_index(
    path: str | Path,
    *,
    method: str | None = None,
    model_fingerprint: str | None = None,
    mmap: bool = True,
    verify: bool = True,
) -> StoredIndex:
    """Read an index folder; `method` / `model_fingerprint`, when given, must match the manifest."""
    path = Path(path)

    def read(folder: int) -> StoredIndex:
        manifest = read_manifest_in(path, folder)
        check_identity(manifest, path, method, model_fingerprint)
        arrays = {
            name: load_array(path, folder, name, entry, mmap=mmap, verify=verify)
            for name, entry in manifest["arrays"].items()
        }
        return StoredIndex(path=path, arrays=arrays, manifest=manifest)

    return read_folder(path, read, marker=MANIFEST)
