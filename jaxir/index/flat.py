"""Exact dense maximum inner product search (MIPS), blocked over documents, plus `FlatIndex`.

Scores are s[q, n] = <queries[q], docs[n]> in float32. Documents are read `block_size` rows at a
time (they may be a memory-mapped array larger than RAM) and merged into a running top-k.

Ordering everywhere in `jaxir.index`: score descending, ties broken by the lower document index.
This is made exact (not argpartition's arbitrary choice) by ranking on one integer key per
candidate that packs the float32 score's order-preserving bits above the inverted index.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .store import load_index, save_index

METHOD = "dense"
_LOW32 = np.uint64(0xFFFFFFFF)


def order_keys(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """uint64 keys, larger = ranked first: (score desc, index asc); index -1 (padding) ranks last.

    Args: scores float32 [...]; indices int64 [...] in [-1, 2**32 - 2].
    """
    bits = (np.asarray(scores, np.float32) + np.float32(0)).view(np.uint32)  # -0.0 -> +0.0
    negative = bits >= np.uint32(0x80000000)
    ordered = np.where(negative, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    low = np.where(indices < 0, 0, 0xFFFFFFFE - indices).astype(np.uint64)
    return (ordered << np.uint64(32)) | low


def top_k_rows(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of candidates, sorted (score desc, index asc).

    Args: scores float32 [Q, M]; indices int64 [Q, M] (or [M], shared by all rows); k <= M.
    Returns: (scores [Q, k] float32, indices [Q, k] int64).
    """
    indices = np.broadcast_to(indices, scores.shape)
    keys = order_keys(scores, indices)
    if k < keys.shape[1]:
        part = np.argpartition(keys, keys.shape[1] - k, axis=1)[:, -k:]
        keys = np.take_along_axis(keys, part, axis=1)
    else:
        part = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    order = np.take_along_axis(part, np.argsort(keys, axis=1)[:, ::-1], axis=1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def _check_inputs(queries: np.ndarray, docs: np.ndarray, k: int) -> None:
    for name, a in (("queries", queries), ("docs", docs)):
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name} must be a 2-D float array [rows, dim], got {a.dtype}{list(a.shape)}")
    if queries.shape[1] != docs.shape[1]:
        raise ValueError(f"queries {list(queries.shape)} and docs {list(docs.shape)} differ in dim")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if docs.shape[0] >= 2**32 - 1:
        raise ValueError(f"{docs.shape[0]} docs exceed the 2**32 - 2 index limit")


def search_dense(
    queries: np.ndarray, docs: np.ndarray, k: int, *, block_size: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product.

    Args: queries [Q, D] float; docs [N, D] float (may be np.memmap); k >= 1.
    Returns: scores [Q, k] float32 and indices [Q, k] int64, sorted by score desc, ties by lower
      index. When k > N the last k - N columns are padding: index -1, score -inf.
    Raises ValueError on bad ranks/dims/dtypes, and when a score is NaN.
    """
    queries, docs = np.asarray(queries), docs if isinstance(docs, np.ndarray) else np.asarray(docs)
    _check_inputs(queries, docs, k)
    q = queries.astype(np.float32, copy=False)
    best_scores = np.full((q.shape[0], k), -np.inf, np.float32)
    best_indices = np.full((q.shape[0], k), -1, np.int64)
    for start in range(0, docs.shape[0], block_size):
        block = np.asarray(docs[start : start + block_size], dtype=np.float32)
        scores = q @ block.T
        if np.isnan(scores).any():
            raise ValueError(f"NaN score against docs[{start}:{start + len(block)}] (non-finite input)")
        cand_scores = np.concatenate([best_scores, scores], axis=1)
        block_indices = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        cand_indices = np.concatenate([best_indices, block_indices], axis=1)
        best_scores, best_indices = top_k_rows(cand_scores, cand_indices, k)
    return best_scores, best_indices


@dataclass
class FlatIndex:
    """Dense vectors [N, D] with their external doc ids [N]; exact search via `search_dense`."""

    embeddings: np.ndarray
    doc_ids: np.ndarray

    def __post_init__(self):
        if not (isinstance(self.doc_ids, np.ndarray) and self.doc_ids.dtype.kind == "U"):
            self.doc_ids = np.asarray(self.doc_ids, dtype=str)
        if self.embeddings.ndim != 2 or len(self.doc_ids) != self.embeddings.shape[0]:
            raise ValueError(
                f"embeddings {list(self.embeddings.shape)} do not match {len(self.doc_ids)} doc ids"
            )

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[str]], np.ndarray]:
        """Top-k doc ids per query ([Q] lists, padding dropped) and scores [Q, k] float32."""
        scores, indices = search_dense(queries, self.embeddings, k)
        ids = [[str(self.doc_ids[i]) for i in row if i >= 0] for row in indices]
        return ids, scores

    def save(self, path: str | Path, *, model_fingerprint: str, meta: dict | None = None,
             kind: str = METHOD) -> Path:
        """`kind`: the manifest's method (which retriever reads it: "dense", "i3", ...)."""
        arrays = {"embeddings": self.embeddings, "doc_ids": self.doc_ids}
        return save_index(path, arrays, method=kind, model_fingerprint=model_fingerprint, meta=meta)

    @classmethod
    def load(
        cls, path: str | Path, *, model_fingerprint: str | None = None, mmap: bool = True, verify: bool = True,
        kind: str = METHOD,
    ) -> "FlatIndex":
        stored = load_index(path, method=kind, model_fingerprint=model_fingerprint, mmap=mmap,
                            verify=verify)
        return cls(embeddings=stored.arrays["embeddings"], doc_ids=stored.arrays["doc_ids"])
