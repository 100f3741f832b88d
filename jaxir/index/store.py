"""Versioned on-disk index format: `manifest.json` + one `.npy` per array, memory-mapped on load.

Layout of an index folder::

    manifest.json   {"format_version": 1, "method": ..., "model_fingerprint": ..., "created": ...,
                     "meta": {...}, "arrays": {name: {file, dtype, shape, nbytes, file_bytes, sha256}}}
    <name>.npy      one per array (no pickles; unicode arrays such as doc ids are fine)

`save_index` writes everything into a temporary folder beside the target, fsyncs it, and only then
moves it into place, so a crash never leaves a half-written index under the target name.
`load_index` checks version, method, model fingerprint, file sizes and headers (and checksums when
`verify`) before handing out arrays, and raises `IndexFormatError` naming the file on any mismatch.

Readers and writers: a published index folder is never changed in place (an update writes a new
folder and `replace_folder` swaps it in; the old one is removed only after that). A reader opens
the folder once and reads the manifest and every array through that handle (`_read_folder`), so
it reads one folder's files, whatever is renamed meanwhile: the old index or the new one, whole.
If the read fails and `path` no longer names the folder it opened (a swap took it away, and may
have removed its files before they were opened), the read is retried on the folder now there, at
most `READ_RETRIES` times; a failure while `path` still names the same folder is the index's own
(damage in place) and is reported as it is.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from ..errors import IndexFormatError
from ..fs import recover_missing, replace_folder, temp_folder_beside, writer_lock

FORMAT_VERSION = 1
DIGEST = "manifest_sha256"  # the manifest's own checksum (see manifest_digest)
BUILT_FROM = "built_from"  # what the index was built from (jaxir.pipeline.built_from)
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_CHUNK = 1 << 22
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
READ_RETRIES = 8  # a reader whose folder was swapped away mid-read starts again at most this often
_RETRY_SLEEP_S = 0.005  # times the try number
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_T = TypeVar("_T")


@dataclass(frozen=True)
class StoredIndex:
    """A loaded index: `arrays` (memory-mapped when loaded with mmap), the manifest and its meta."""

    path: Path
    arrays: dict[str, np.ndarray]
    manifest: dict

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta", {})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_array(name: str, array: np.ndarray) -> np.ndarray:
    if not _NAME.match(name):
        raise ValueError(f"array name {name!r} must match [A-Za-z0-9_]+ (it becomes a file name)")
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError(f"array {name!r} has dtype {array.dtype}; object arrays cannot be stored")
    return array


def _write_array(folder: Path, name: str, array: np.ndarray) -> dict:
    file = folder / f"{name}.npy"
    np.save(file, np.ascontiguousarray(array), allow_pickle=False)
    _fsync(file)
    return {
        "file": file.name,
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "nbytes": int(array.nbytes),
        "file_bytes": file.stat().st_size,
        "sha256": _sha256(file),
    }


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
    checked = {name: _check_array(name, a) for name, a in arrays.items()}
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


def _link_array(folder: Path, name: str, kept: StoredIndex) -> dict:
    """An unchanged array of `kept`: its file hard-linked (copied where links fail) into `folder`."""
    entry = dict(kept.manifest["arrays"][name])
    src, dst = kept.path / entry["file"], folder / entry["file"]
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        _fsync(dst)
    return entry


def _write_folder(path: Path, checked: dict, manifest: dict, reuse: dict | None = None) -> None:
    tmp = temp_folder_beside(path)
    try:
        for name, array in checked.items():
            manifest["arrays"][name] = (_link_array(tmp, name, reuse[name]) if name in (reuse or {})
                                        else _write_array(tmp, name, array))
        manifest[DIGEST] = manifest_digest(manifest)
        text = json.dumps(manifest, indent=1)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        _fsync(tmp / MANIFEST)
        _fsync(tmp)
        try:
            replace_folder(tmp, path, marker=MANIFEST, what="an index folder", check=read_manifest)
        except FileExistsError as e:
            raise IndexFormatError(str(e)) from None
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stamp_manifest(path: str | Path, fields: dict) -> dict:
    """Add top-level `fields` to the manifest of a finished index that is not yet in use (a
    build's own folder, before it is swapped in), with a new digest; returns the manifest."""
    path = Path(path)
    manifest = _read_manifest(path)
    manifest.update(fields)
    manifest[DIGEST] = manifest_digest(manifest)
    json.dumps(manifest)
    tmp = path / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path / MANIFEST)
    _fsync(path)
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of the index at `path` (digest checked; arrays not opened)."""
    path = Path(path)
    manifest = _read_manifest(path)
    _check_identity(manifest, path, None, None)
    return manifest


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: an edited `method`,
    `meta.n_docs` or checksum table is refused at open instead of failing (or answering) later."""
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _open_folder(path: Path) -> int:
    """A descriptor of the folder `path` names now (a folder missing because a writer died
    mid-swap is first put back, see `recover_missing`)."""
    for _ in range(READ_RETRIES + 1):
        try:
            return os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            if not recover_missing(path, marker=MANIFEST):
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


def _read_folder(path: Path, read: Callable[[int], _T]) -> _T:
    """`read(folder)` on one opened folder of `path`; started again on the folder `path` names
    now when it fails because a writer swapped the folder away while it was read."""
    for attempt in range(READ_RETRIES + 1):
        if attempt:
            time.sleep(_RETRY_SLEEP_S * attempt)
        folder = _open_folder(path)
        try:
            return read(folder)
        except (IndexFormatError, OSError):
            if not _replaced(path, folder):
                raise  # the folder is still the one there: its own error, not a swap's
        finally:
            os.close(folder)
    raise IndexFormatError(f"{path} was replaced {READ_RETRIES + 1} times while it was read (a writer "
                           "keeps swapping it): try again when it is done")


def _open_in(folder: int, name: str, path: Path) -> int | None:
    """A read descriptor of the regular file `name` in `folder` (None if there is none)."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0), dir_fd=folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read_manifest(path: Path, folder: int | None = None) -> dict:
    if folder is None:
        return _read_folder(path, lambda opened: _read_manifest(path, opened))
    file = path / MANIFEST
    fd = _open_in(folder, MANIFEST, path)
    if fd is None:
        raise IndexFormatError(f"{file} is missing: {path} is not a jaxir index (or is incomplete)")
    try:
        with os.fdopen(fd, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise IndexFormatError(f"{file} has no 'arrays' table")
    return manifest


def _check_identity(manifest: dict, path: Path, method: str | None, fingerprint: str | None) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} has format_version {version!r}; this jaxir reads version {FORMAT_VERSION}"
        )
    # Indexes written before the digest existed carry none and are read as they are; those
    # writers never recorded `built_from` either, so a record without a digest was edited.
    if (DIGEST in manifest and manifest[DIGEST] != manifest_digest(manifest)) or (
            DIGEST not in manifest and BUILT_FROM in manifest):
        raise IndexFormatError(f"{path / MANIFEST} was edited after it was written (its digest no longer "
                               "matches): rebuild the index")
    if method is not None and manifest.get("method") != method:
        raise IndexFormatError(f"{path} holds a {manifest.get('method')!r} index, expected {method!r}")
    if fingerprint is not None and manifest.get("model_fingerprint") != fingerprint:
        raise IndexFormatError(
            f"{path} was built with model {manifest.get('model_fingerprint')!r}, "
            f"but the model in use is {fingerprint!r}"
        )


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


def _load_array(path: Path, folder: int, name: str, entry: dict, *, mmap: bool, verify: bool) -> np.ndarray:
    """One array, read (or memory-mapped) through the open `folder` (see `_read_folder`)."""
    file_name = str(entry.get("file", ""))
    if Path(file_name).name != file_name or not file_name.endswith(".npy"):
        raise IndexFormatError(f"{path / MANIFEST}: array {name!r} names a bad file {file_name!r}")
    file = path / file_name
    fd = _open_in(folder, file_name, path)
    if fd is None:
        raise IndexFormatError(f"{file} (array {name!r}) is missing")
    with os.fdopen(fd, "rb") as f:
        offset, shape, dtype, fortran = _check_npy(file, f, entry)
        if verify:
            f.seek(0)
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            if digest.hexdigest() != entry.get("sha256"):
                raise IndexFormatError(f"{file} (array {name!r}) fails its sha256 checksum: the file is corrupt")
        # An empty file region cannot be memory-mapped; empty arrays are read normally. The map
        # holds the file itself: it stays valid when a later swap removes the folder.
        if mmap and entry.get("nbytes", 0) > 0:
            return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                             order="F" if fortran else "C")
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)


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
        manifest = _read_manifest(path, folder)
        _check_identity(manifest, path, method, model_fingerprint)
        arrays = {
            name: _load_array(path, folder, name, entry, mmap=mmap, verify=verify)
            for name, entry in manifest["arrays"].items()
        }
        return StoredIndex(path=path, arrays=arrays, manifest=manifest)

    return _read_folder(path, read)
