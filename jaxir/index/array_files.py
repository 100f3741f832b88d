"""One `.npy` file per index array (no pickles; unicode arrays such as doc ids are fine): writing
it with its manifest entry, hard-linking an unchanged one from the index being replaced, and
reading it back only after its size, header and checksum match that entry.

An entry is {file, dtype, shape, nbytes, file_bytes, sha256} (see `jaxir.index.manifest`).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError
from ..fs import fsync
from .folder_reads import open_in
from .manifest import MANIFEST

_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_CHUNK = 1 << 22
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _sha256(f) -> str:
    """sha256 of the open binary file `f` from its current position to its end."""
    digest = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def check_array(name: str, array: np.ndarray) -> np.ndarray:
    """`array` as an ndarray, if `name` can be a file name and the dtype can be stored."""
    if not _NAME.match(name):
        raise ValueError(f"array name {name!r} must match [A-Za-z0-9_]+ (it becomes a file name)")
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError(f"array {name!r} has dtype {array.dtype}; object arrays cannot be stored")
    return array


def write_array(folder: Path, name: str, array: np.ndarray) -> dict:
    """Write `folder/NAME.npy` (flushed to disk); returns its manifest entry."""
    file = folder / f"{name}.npy"
    np.save(file, np.ascontiguousarray(array), allow_pickle=False)
    fsync(file)
    with open(file, "rb") as f:
        sha256 = _sha256(f)
    return {
        "file": file.name,
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "nbytes": int(array.nbytes),
        "file_bytes": file.stat().st_size,
        "sha256": sha256,
    }


def link_array(folder: Path, entry: dict, source: Path) -> dict:
    """An unchanged array of the index at `source` (its manifest `entry`): its file hard-linked
    (copied where links fail) into `folder`; returns the entry."""
    src, dst = source / entry["file"], folder / entry["file"]
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        fsync(dst)
    return dict(entry)


def _check_npy(file: Path, f, entry: dict) -> tuple[int, list, np.dtype, bool]:
    """Size and header checks of the open `.npy` file `f`, so truncated or edited files fail
    here and not inside NumPy; returns (data offset, shape, dtype, fortran order)."""
    size = os.fstat(f.fileno()).st_size
    if size != entry.get("file_bytes"):
        raise IndexFormatError(
            f"{file} has {size} bytes, manifest says {entry.get('file_bytes')} (truncated?)"
        )
    try:
        version = np.lib.format.read_magic(f)
        read_header = _HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    except (ValueError, SyntaxError) as e:
        raise IndexFormatError(f"{file} has a corrupt .npy header: {e}") from e
    if list(shape) != entry.get("shape") or dtype.str != entry.get("dtype"):
        raise IndexFormatError(
            f"{file} holds {dtype.str}{list(shape)}, manifest says {entry.get('dtype')}{entry.get('shape')}"
        )
    if size - offset != entry.get("nbytes"):
        raise IndexFormatError(f"{file} has {size - offset} data bytes, expected {entry.get('nbytes')}")
    return offset, list(shape), dtype, fortran


def load_array(path: Path, folder: int, name: str, entry: dict, *, mmap: bool, verify: bool) -> np.ndarray:
    """One array of the index at `path`, read (or memory-mapped) through its open `folder`
    (see `jaxir.index.folder_reads.read_folder`), checked against its manifest `entry`."""
    file_name = str(entry.get("file", ""))
    if Path(file_name).name != file_name or not file_name.endswith(".npy"):
        raise IndexFormatError(f"{path / MANIFEST}: array {name!r} names a bad file {file_name!r}")
    file = path / file_name
    fd = open_in(folder, file_name)
    if fd is None:
        raise IndexFormatError(f"{file} (array {name!r}) is missing")
    with os.fdopen(fd, "rb") as f:
        offset, shape, dtype, fortran = _check_npy(file, f, entry)
        if verify:
            f.seek(0)
            if _sha256(f) != entry.get("sha256"):
                raise IndexFormatError(f"{file} (array {name!r}) fails its sha256 checksum: the file is corrupt")
        # An empty file region cannot be memory-mapped; empty arrays are read normally. The map
        # holds the file itself: it stays valid when a later swap removes the folder.
        if mmap and entry.get("nbytes", 0) > 0:
            return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                             order="F" if fortran else "C")
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
