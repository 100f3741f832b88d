"""What an index was built from, recorded in its manifest and checked before it is used.

Every index that `jaxir index` or `jaxir eval` builds carries, next to the model fingerprint its
retriever checks at open, a `built_from` record::

    {"corpus_sha256": sha256 of the corpus's (id, text) pairs, "n_docs": N,
     "settings": {build option: value}}       (search-only options are not build settings)

An index is used only for the corpus it was built from (`--allow-corpus-mismatch` overrides,
with a warning naming both digests) and only with the build settings the command asks for
(options left unset take the index's). The eval cache is keyed on the same record, so a
corpus rewritten in place gets a new index instead of the old one. `jaxir index --out` reuses an
index there only when the record and the model match exactly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from jaxir.errors import IndexFormatError, OptionError
from jaxir.fs import replace_folder, temp_folder_beside, writer_lock
from jaxir.index.store import MANIFEST, read_manifest, stamp_manifest

BUILT_FROM = "built_from"
_WEIGHTS = ("checkpoint", "model")  # identified by the model fingerprint, not by their path


def build_settings(retriever) -> dict:
    """The retriever's options that change what its index holds (not the search-only ones)."""
    return {f.name: json.loads(json.dumps(getattr(retriever, f.name), default=str))
            for f in dataclasses.fields(retriever) if f.repr and f.init}


def identity(retriever, dataset) -> dict:
    return {"corpus_sha256": dataset.corpus_fingerprint, "n_docs": len(dataset.corpus),
            "settings": build_settings(retriever)}


def default_index_dir(cache: Path, dataset, retriever) -> Path:
    """A cache folder keyed by the corpus's content and the retriever's build settings."""
    key = json.dumps([dataset.name, dataset.corpus_fingerprint, repr(retriever)], sort_keys=True)
    return Path(cache) / f"{dataset.name}-{retriever.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def build_index(retriever, dataset, index_dir: Path, *, reuse: str | None = None) -> float:
    """Build the index in a folder of its own, stamp it with `built_from`, then swap it in over
    any old index at `index_dir`, holding that path's writer lock throughout; returns seconds.
    reuse ("compatible" | "exact"): if, once the lock is held, an index that matches is there
    (another writer just built it), keep it and return 0."""
    index_dir = Path(index_dir)
    t = time.perf_counter()
    with writer_lock(index_dir, marker=MANIFEST):
        if reuse and _reusable(index_dir, retriever, dataset, exact=reuse == "exact"):
            return 0.0
        stage = temp_folder_beside(index_dir)
        try:
            built = stage / "index"
            retriever.build(dataset.doc_ids, dataset.doc_texts(), built)
            stamp_manifest(built, {BUILT_FROM: identity(retriever, dataset)})
            replace_folder(built, index_dir, marker=MANIFEST, what="an index folder")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return time.perf_counter() - t


def mismatch(index_dir: Path, retriever, dataset, *, exact: bool = False) -> str | None:
    """Why the index at `index_dir` is not one of `dataset`'s corpus with `retriever`'s settings
    (None if it is). exact: every build setting must match, unset ones and weight paths too."""
    recorded = read_manifest(index_dir).get(BUILT_FROM)
    if recorded is None:
        return (f"{index_dir} records no corpus fingerprint (built before jaxir kept one): rebuild it "
                "with jaxir index --force")
    want = identity(retriever, dataset)
    if recorded.get("corpus_sha256") != want["corpus_sha256"]:
        return (f"{index_dir} was built from another corpus ({recorded.get('n_docs')} docs, sha256 "
                f"{str(recorded.get('corpus_sha256'))[:12]}) than {dataset.name}'s ({want['n_docs']} docs, "
                f"sha256 {want['corpus_sha256'][:12]})")
    have = recorded.get("settings", {})
    for name, value in want["settings"].items():
        if (exact or (value is not None and name not in _WEIGHTS)) and have.get(name) != value:
            return f"{index_dir} was built with {name}={have.get(name)!r}, this command asks for {value!r}"
    return None


def _reusable(index_dir: Path, retriever, dataset, *, exact: bool) -> bool:
    if not (index_dir / MANIFEST).is_file():
        return False
    try:
        return _why_not(index_dir, retriever, dataset, exact=exact) is None
    except IndexFormatError:
        return False


def _why_not(index_dir: Path, retriever, dataset, *, exact: bool) -> str | None:
    """`mismatch`, and for an exact match also the retriever's own check of the model."""
    why = mismatch(index_dir, retriever, dataset, exact=exact)
    if why is None and exact:
        try:
            (getattr(retriever, "open_reranker", None) or retriever.open)(index_dir)
        except IndexFormatError as e:
            why = str(e)
    return why


def index_for(retriever, dataset, index_dir: Path | None, cache: Path, *,
              allow_corpus_mismatch: bool = False) -> tuple[Path, float]:
    """(folder, build seconds) of `retriever`'s index of `dataset`. No `index_dir`: the cache
    folder, reused only if its record matches, else rebuilt. A given `index_dir` is built if
    empty; an index there must be of this corpus and these settings."""
    if index_dir is None:
        index_dir = default_index_dir(cache, dataset, retriever)
        if _reusable(index_dir, retriever, dataset, exact=False):
            return index_dir, 0.0
        return index_dir, build_index(retriever, dataset, index_dir, reuse="compatible")
    index_dir = Path(index_dir)
    if not index_dir.exists():
        return index_dir, build_index(retriever, dataset, index_dir, reuse="compatible")
    if not (index_dir / MANIFEST).is_file():
        raise IndexFormatError(f"{index_dir} exists and is not a jaxir index (no {MANIFEST})")
    why = mismatch(index_dir, retriever, dataset)
    if why is not None:
        if not allow_corpus_mismatch:
            raise IndexFormatError(f"{why} (--allow-corpus-mismatch to use it anyway)")
        print(f"warning: --allow-corpus-mismatch: {why}", file=sys.stderr)
    return index_dir, 0.0


def index_at(retriever, dataset, out: Path, *, force: bool = False) -> tuple[str, float]:
    """`jaxir index --out`: ("built" | "reused", seconds). An index already at `out` is reused
    only when corpus, every build setting and the model match; else it needs `force`."""
    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file():
        raise OptionError(f"--out {out} exists and is not an index: refusing to replace it")
    if out.exists() and not force:
        why = _why_not(out, retriever, dataset, exact=True)
        if why is None:
            return "reused", 0.0
        raise OptionError(f"--out {out} already holds a different index: {why}; pass --force to "
                          "rebuild it (the old one stays in place until the new one is complete)")
    secs = build_index(retriever, dataset, out, reuse=None if force else "exact")
    return ("built" if secs or force else "reused"), secs
