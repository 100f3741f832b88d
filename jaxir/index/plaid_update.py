"""Incremental PLAID updates (NumPy only): append documents with the index's codec, hide documents
by id, compact them away; and the same on an index folder, atomically.

In memory each operation (`add_documents`, `delete_documents`, `compact`) returns a new `PlaidIndex` and leaves its input untouched; arrays it
does not change are the input's own objects. On disk, `update_folder` holds the folder's writer
lock from read to swap, writes the new index beside the old one and renames it in, so a reader
sees the old index or the new one and a writer killed at any point leaves the old one searchable
(`jaxir.fs`). Arrays an update leaves unchanged are hard-linked from the old files: hiding a
document writes one bool per row, not the index.

Appends reuse the codec (centroids and residual buckets fitted on the original corpus); no
re-fit. Documents far from the original distribution are coded less precisely than a rebuild
would code them: the recall of an appended index against a rebuilt one is measured in docs/results-log.md.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, IndexFormatError
from ..fs_lock import writer_lock
from .plaid import METHOD, PlaidIndex
from .plaid_builder import PlaidIndexBuilder
from .manifest import BUILT_FROM, MANIFEST
from .store import StoredIndex, load_index, save_index

UPDATES = "updates"  # meta: the log of updates applied since the build, oldest first


def _check_new_ids(index: PlaidIndex, doc_ids: Sequence[str]) -> list[str]:
    ids = [str(d) for d in doc_ids]
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for d in ids:
            dup = d if d in seen and dup is None else dup
            seen.add(d)
        raise DataError(f"cannot append: doc id {dup!r} appears twice in the new documents")
    have = set(index.doc_ids.tolist()) & set(ids)
    if have:
        raise DataError(f"cannot append: {len(have)} doc ids are already in the index "
                        f"(first: {sorted(have)[0]!r}); delete and compact them first to replace them")
    return ids


def add_documents(index: PlaidIndex, docs: Sequence[np.ndarray], doc_ids: Sequence[str]) -> PlaidIndex:
    """`index` + `docs` ([n_tok, D] unit vectors each, coded with `index.codec`) as new rows at
    the end; deleted rows stay deleted. Ids must be new; each doc must have the index's dim."""
    if len(docs) != len(doc_ids):
        raise DataError(f"cannot append: {len(doc_ids)} doc ids for {len(docs)} documents")
    if not len(docs):
        return index
    ids = _check_new_ids(index, doc_ids)
    for i, d in enumerate(docs):
        shape = np.shape(d)
        if len(shape) != 2 or shape[1] != index.codec.dim:
            raise DataError(f"cannot append: document {ids[i]!r} has vectors of shape {shape}; this "
                            f"index holds dim {index.codec.dim} (another model or projection?)")
    builder = PlaidIndexBuilder(index.codec)
    builder.add_compressed(index.codes, index.residuals, index.doclens, index.doc_ids.tolist())
    builder.add(docs, ids)
    new = builder.finish()
    if index.deleted is not None:
        new.deleted = np.concatenate([index.deleted, np.zeros(len(docs), bool)])
    return new


def delete_documents(index: PlaidIndex, doc_ids: Sequence[str]) -> PlaidIndex:
    """`index` with `doc_ids` hidden from search (rows kept until `compact`). Every id must be a
    live document of the index (an unknown or already deleted id is an error naming it)."""
    row_of = {d: i for i, d in enumerate(index.doc_ids.tolist())}
    rows = []
    for d in doc_ids:
        row = row_of.get(str(d))
        if row is None:
            raise DataError(f"cannot delete {str(d)!r}: no such document in the index")
        if index.deleted is not None and index.deleted[row]:
            raise DataError(f"cannot delete {str(d)!r}: it is already deleted")
        rows.append(row)
    deleted = np.zeros(index.num_docs, bool) if index.deleted is None else np.array(index.deleted)
    deleted[rows] = True
    if deleted.all():
        raise DataError("cannot delete every document of an index (an index holds at least one)")
    return PlaidIndex(index.codec, index.codes, index.residuals, index.doclens, index.ivf_offsets,
                      index.ivf_doc_ids, index.doc_ids, deleted)


def live_token_rows(index: PlaidIndex) -> np.ndarray:
    """Token rows [t] of the live documents, in index order (what `compact` keeps)."""
    from .exact import gather_ranges

    rows = index.live(np.arange(index.num_docs))
    return gather_ranges(index.doc_offsets[rows], index.doclens[rows].astype(np.int64))


def compact(index: PlaidIndex) -> PlaidIndex:
    """`index` without its deleted rows (same codec, IVF rebuilt); unchanged if none are deleted."""
    if index.deleted is None:
        return index
    rows = index.live(np.arange(index.num_docs))
    tokens = live_token_rows(index)
    builder = PlaidIndexBuilder(index.codec)
    builder.add_compressed(np.take(index.codes, tokens), np.take(index.residuals, tokens, axis=0),
                           index.doclens[rows], index.doc_ids[rows].tolist())
    return builder.finish()


def update_folder(path: str | Path, change: Callable[[PlaidIndex, StoredIndex], tuple[PlaidIndex, dict]],
                  *, op: dict, model_fingerprint: str | None = None,
                  fields: dict | None = None) -> PlaidIndex:
    """Apply `change(index, stored) -> (new index, {extra array: array})` to the index folder at
    `path`, atomically and under its writer lock; returns the new index.

    The folder must hold a PLAID index (of `model_fingerprint`, when given); it is verified
    (checksums) before the change. `op` ({"op": "add", "docs": n, ...}) is appended to the
    manifest's meta["updates"]. The corpus record (`built_from`) describes the corpus an index was
    built from, which an update changes: it is replaced by `fields[BUILT_FROM]` when given and
    dropped otherwise, so `jaxir eval` never takes the changed index for the old corpus."""
    path = Path(path)
    with writer_lock(path, marker=MANIFEST):
        if not (path / MANIFEST).is_file():
            raise IndexFormatError(f"{path} holds no index to update (no {MANIFEST})")
        stored = load_index(path, method=METHOD, model_fingerprint=model_fingerprint, verify=True)
        index = PlaidIndex.from_stored(stored)
        new, extras = change(index, stored)
        meta = {k: v for k, v in stored.meta.items() if k != "num_live"}
        meta[UPDATES] = [*meta.get(UPDATES, []),
                         {**op, "at": datetime.datetime.now(datetime.timezone.utc).isoformat()}]
        meta.update(new.info())
        keep = {k: v for k, v in stored.manifest.items()
                if k not in ("format_version", "method", "model_fingerprint", "created", "meta",
                             "arrays", "manifest_sha256", BUILT_FROM)}
        save_index(path, {**new.to_arrays(), **extras}, method=METHOD,
                   model_fingerprint=stored.manifest["model_fingerprint"], meta=meta, kept=stored,
                   fields={**keep, **(fields or {})})
    return new



FP16_ARRAY = "tokens_fp16"  # the optional fp16 copy of every token vector (`--uncompressed`)


def _extras(stored: StoredIndex, index: PlaidIndex) -> dict:
    """The folder's arrays beyond the index's own; only the fp16 token copy is known."""
    extra = {k: v for k, v in stored.arrays.items() if k not in index.to_arrays() and k != "deleted"}
    unknown = sorted(set(extra) - {FP16_ARRAY})
    if unknown:
        raise IndexFormatError(f"{stored.path} holds arrays {unknown} an update cannot carry over: rebuild it")
    return extra


def append_to_folder(path, docs, doc_ids, **kw) -> PlaidIndex:
    """`add_documents` on the index folder at `path` (its fp16 copy, if any, extended too)."""
    def change(index, stored):
        extra = _extras(stored, index)
        if FP16_ARRAY in extra:
            new = [np.asarray(d, np.float16).reshape(-1, index.codec.dim) for d in docs]
            extra[FP16_ARRAY] = np.concatenate([np.asarray(extra[FP16_ARRAY]), *new])
        return add_documents(index, docs, doc_ids), extra
    return update_folder(path, change, op={"op": "add", "docs": len(doc_ids)}, **kw)


def delete_from_folder(path, doc_ids, **kw) -> PlaidIndex:
    """`delete_documents` on the index folder at `path` (one small array rewritten)."""
    return update_folder(path, lambda index, stored: (delete_documents(index, doc_ids), _extras(stored, index)),
                         op={"op": "delete", "docs": len(doc_ids)}, **kw)


def compact_folder(path, **kw) -> PlaidIndex:
    """`compact` on the index folder at `path` (its fp16 copy, if any, compacted too)."""
    def change(index, stored):
        extra = _extras(stored, index)
        if FP16_ARRAY in extra and index.deleted is not None:
            extra[FP16_ARRAY] = np.take(extra[FP16_ARRAY], live_token_rows(index), axis=0)
        return compact(index), extra
    return update_folder(path, change, op={"op": "compact"}, **kw)
