"""An index folder's `manifest.json`: what it records, its digest, reading it and checking that it
is the index asked for (NumPy-free)::

    {"format_version": 1, "method": ..., "model_fingerprint": ..., "created": ...,
     "meta": {...}, "arrays": {name: {file, dtype, shape, nbytes, file_bytes, sha256}},
     "built_from": {...} (optional), "manifest_sha256": digest of all the rest}

The arrays' files and the writes are `jaxir.index.store`'s.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import IndexFormatError
from ..fs import fsync
from .folder_reads import open_in, read_folder

FORMAT_VERSION = 1
DIGEST = "manifest_sha256"  # the manifest's own checksum (see manifest_digest)
BUILT_FROM = "built_from"  # what the index was built from (jaxir.pipeline.built_from)
MANIFEST = "manifest.json"


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: an edited `method`,
    `meta.n_docs` or checksum table is refused at open instead of failing (or answering) later."""
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def read_manifest_in(path: Path, folder: int) -> dict:
    """The manifest of the index folder `path`, open as `folder` (see `read_folder`); not checked
    beyond being a JSON table with an 'arrays' table (`check_identity` does the rest)."""
    file = path / MANIFEST
    fd = open_in(folder, MANIFEST)
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


def _read_unchecked(path: Path) -> dict:
    return read_folder(path, lambda folder: read_manifest_in(path, folder), marker=MANIFEST)


def read_manifest(path: str | Path) -> dict:
    """The manifest of the index at `path` (digest checked; arrays not opened)."""
    path = Path(path)
    manifest = _read_unchecked(path)
    check_identity(manifest, path, None, None)
    return manifest


def check_identity(manifest: dict, path: Path, method: str | None, fingerprint: str | None) -> None:
    """IndexFormatError unless `manifest` (of the index at `path`) has this format version, an
    intact digest and, when given, this `method` and model `fingerprint`."""
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


def stamp_manifest(path: str | Path, fields: dict) -> dict:
    """Add top-level `fields` to the manifest of a finished index that is not yet in use (a
    build's own folder, before it is swapped in), with a new digest; returns the manifest."""
    path = Path(path)
    manifest = _read_unchecked(path)
    manifest.update(fields)
    manifest[DIGEST] = manifest_digest(manifest)
    json.dumps(manifest)
    tmp = path / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    fsync(tmp)
    os.replace(tmp, path / MANIFEST)
    fsync(path)
    return manifest
