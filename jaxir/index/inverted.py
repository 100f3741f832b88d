"""Posting lists (term -> doc indices, weights), shared by BM25 and learned sparse retrieval.

CSR by term: the postings of term t are `postings[offsets[t]:offsets[t+1]]` (int32 doc indices,
ascending) with `weights[...]` stored as float32, float16, or uint8 (w ≈ stored * scale, scale =
max w / 255, so each posting is off by at most scale / 2).

Scoring is score-at-a-time: s(d) = Σ_t q_t · w_{t,d}, accumulated into a buffer of all N docs
(term by term in float32, or in one float64 bincount: see `_accumulate`), then the top k non-zero
scores are kept (score desc, lower index first) and returned as float32.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, IndexFormatError
from .store import load_index, save_index

WEIGHT_DTYPES = ("float32", "float16", "uint8")
METHOD = "sparse"


class NoKnownTermsWarning(UserWarning):
    """A query had no term with postings in the index; its result is empty."""


def _quantize(weights: np.ndarray, dtype: str) -> tuple[np.ndarray, float]:
    """float64 weights [P] -> (stored [P] in `dtype`, scale)."""
    if dtype == "float32":
        return weights.astype(np.float32), 1.0
    if dtype == "float16":
        if weights.size and np.abs(weights).max() > np.finfo(np.float16).max:
            raise ValueError(f"weights up to {np.abs(weights).max()} overflow float16")
        return weights.astype(np.float16), 1.0
    if dtype == "uint8":
        if weights.size and weights.min() < 0:
            raise ValueError(f"uint8 postings need weights >= 0, got min {weights.min()}")
        scale = float(weights.max()) / 255.0 if weights.size and weights.max() > 0 else 1.0
        return np.clip(np.rint(weights / scale), 0, 255).astype(np.uint8), scale
    raise ValueError(f"dtype must be one of {WEIGHT_DTYPES}, got {dtype!r}")


def _check_coo(docs: np.ndarray, terms: np.ndarray, weights: np.ndarray, n_docs: int, vocab_size: int):
    if not (docs.shape == terms.shape == weights.shape) or docs.ndim != 1:
        raise ValueError(f"docs {docs.shape}, terms {terms.shape}, weights {weights.shape} must be equal 1-D")
    if docs.size and (docs.min() < 0 or docs.max() >= n_docs):
        raise DataError(f"doc index {docs.min()}..{docs.max()} outside [0, {n_docs})")
    if terms.size and (terms.min() < 0 or terms.max() >= vocab_size):
        bad = int(docs[np.argmax((terms < 0) | (terms >= vocab_size))])
        raise DataError(f"doc {bad}: term id outside [0, {vocab_size})")
    if not np.isfinite(weights).all():
        raise DataError(f"doc {int(docs[np.argmin(np.isfinite(weights))])}: non-finite weight")
    if n_docs >= 2**31:
        raise ValueError(f"{n_docs} docs exceed the int32 posting limit")


def _top_k_nonzero(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k non-zero entries of scores [N]: (indices [<=k] int64, scores), score desc, index asc.

    The cut is found on a float32 copy (partition runs 2x faster than on float64 sums): rounding
    is monotone, so every doc of the exact top k rounds to >= the rounded k-th score and is a
    candidate; the candidates are then ranked by the exact scores.
    """
    n = scores.size
    coarse = scores.astype(np.float32, copy=False)
    kth = np.partition(coarse, n - k)[n - k] if k < n else 0.0
    # Every doc scoring >= the k-th best is a candidate, so ties at the cut are resolved by index.
    cand = np.flatnonzero(coarse >= kth) if kth > 0 else np.flatnonzero(scores)
    top = cand[np.lexsort((cand, -scores[cand]))[:k]]
    return top.astype(np.int64), scores[top]


@dataclass
class InvertedIndex:
    """offsets [V+1] int64; postings [P] int32; weights [P] (WEIGHT_DTYPES); n_docs; scale."""

    offsets: np.ndarray
    postings: np.ndarray
    weights: np.ndarray
    n_docs: int
    scale: float = 1.0

    @property
    def vocab_size(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_coo(cls, docs, terms, weights, *, n_docs: int, vocab_size: int, dtype: str = "float32"):
        """Postings from coordinate triples (doc index, term id, weight) [P]; zero weights dropped.

        A (doc, term) pair may occur only once (DataError names the doc otherwise).
        """
        docs, terms = np.asarray(docs, np.int64), np.asarray(terms, np.int64)
        weights = np.asarray(weights, np.float64)
        _check_coo(docs, terms, weights, n_docs, vocab_size)
        keep = weights != 0
        docs, terms, weights = docs[keep], terms[keep], weights[keep]
        stored, scale = _quantize(weights, dtype)
        keep = stored != 0  # a weight that rounds to 0 (uint8) or underflows (float16) is no posting
        docs, terms, stored = docs[keep], terms[keep], stored[keep]
        order = np.lexsort((docs, terms))
        docs, terms, stored = docs[order], terms[order], stored[order]
        repeated = (np.diff(terms) == 0) & (np.diff(docs) == 0)
        if repeated.any():
            i = int(np.argmax(repeated))
            raise DataError(f"doc {docs[i]}: term {terms[i]} occurs twice; sum its weights first")
        offsets = np.zeros(vocab_size + 1, np.int64)
        np.cumsum(np.bincount(terms, minlength=vocab_size), out=offsets[1:])
        return cls(offsets, docs.astype(np.int32), stored, n_docs, scale)

    @classmethod
    def build(cls, docs: Iterable, *, vocab_size: int | None = None, dtype: str = "float32"):
        """Streamed build from per-document (term_ids [T], weights [T]) pairs, in doc order."""
        doc_parts, term_parts, weight_parts = [], [], []
        n_docs = 0
        for n_docs, (term_ids, weights) in enumerate(docs, start=1):
            term_ids, weights = np.asarray(term_ids, np.int64), np.asarray(weights, np.float64)
            if term_ids.shape != weights.shape or term_ids.ndim != 1:
                raise DataError(f"doc {n_docs - 1}: term_ids {term_ids.shape} vs weights {weights.shape}")
            doc_parts.append(np.full(len(term_ids), n_docs - 1, np.int64))
            term_parts.append(term_ids)
            weight_parts.append(weights)
        if n_docs == 0:
            raise DataError("cannot build an inverted index from zero documents")
        terms = np.concatenate(term_parts)
        if vocab_size is None:
            vocab_size = int(terms.max()) + 1 if terms.size else 0
        docs_flat, weights_flat = np.concatenate(doc_parts), np.concatenate(weight_parts)
        return cls.from_coo(docs_flat, terms, weights_flat, n_docs=n_docs, vocab_size=vocab_size, dtype=dtype)

    def _known(self, term_ids, query_weights) -> tuple[np.ndarray, np.ndarray]:
        term_ids = np.asarray(term_ids, np.int64).reshape(-1)
        query_weights = np.asarray(query_weights, np.float32).reshape(-1)
        if term_ids.shape != query_weights.shape:
            raise ValueError(f"term_ids {term_ids.shape} and query_weights {query_weights.shape} differ")
        if term_ids.size == 0 or (term_ids.min() >= 0 and term_ids.max() < self.vocab_size):
            return term_ids, query_weights  # the usual case: no copy
        known = (term_ids >= 0) & (term_ids < self.vocab_size)
        return term_ids[known], query_weights[known]

    def _accumulate(self, term_ids, query_weights, ordered: bool = True) -> tuple[np.ndarray, int]:
        """(scores [N], number of postings read).

        ordered: float32 adds term by term in query order (bm25s's order, so ties match it);
        else one gather + bincount over all the query's postings into float64 sums (kept
        float64 for the top-k, which then ranks by the exact sums): a fixed cost per query
        instead of per term, for queries of many short posting lists.
        """
        terms, qw = self._known(term_ids, query_weights)
        if not ordered:
            # The query's lists joined by slices (one pass each), not gathered through an index.
            spans = list(zip(self.offsets[terms].tolist(), self.offsets[terms + 1].tolist()))
            docs = np.concatenate([self.postings[a:b] for a, b in spans] or [self.postings[:0]])
            stored = np.concatenate([self.weights[a:b] for a, b in spans] or [self.weights[:0]])
            per_term = np.repeat(qw * np.float32(self.scale), [b - a for a, b in spans])
            w = np.multiply(stored, per_term, dtype=np.float32)  # the float32 products as before
            return np.bincount(docs, weights=w, minlength=self.n_docs), len(docs)
        scores = np.zeros(self.n_docs, np.float32)
        starts, ends = self.offsets[terms].tolist(), self.offsets[terms + 1].tolist()
        plain = self.weights.dtype == np.float32
        for q, start, end in zip((qw * np.float32(self.scale)).tolist(), starts, ends):
            w = self.weights[start:end]
            if q != 1.0 or not plain:
                w = w.astype(np.float32) * np.float32(q)
            # Unbuffered float32 adds, term by term in query order, as bm25s accumulates.
            np.add.at(scores, self.postings[start:end], w)
        return scores, sum(ends) - sum(starts)

    def score_all(self, term_ids, query_weights, *, ordered: bool = True) -> np.ndarray:
        """Scores of all docs [N] float32 for one query (term_ids [T], query_weights [T]).

        s(d) = Σ_t q_t · w_{t,d}; ids outside [0, V) are ignored; repeated ids add up.
        """
        return self._accumulate(term_ids, query_weights, ordered)[0].astype(np.float32, copy=False)

    def search(self, term_ids, query_weights, k: int, *, ordered: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k docs with a non-zero score: (doc indices [<=k] int64, scores [<=k] float32).

        A query none of whose terms has postings warns (NoKnownTermsWarning) and returns empty
        arrays. ordered: see `_accumulate`.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, touched = self._accumulate(term_ids, query_weights, ordered)
        if touched == 0:
            warnings.warn(f"no query term has postings (term ids {list(np.ravel(term_ids))[:8]}); "
                          "returning an empty result", NoKnownTermsWarning, stacklevel=2)
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top, top_scores = _top_k_nonzero(scores, k)
        return top, top_scores.astype(np.float32, copy=False)

    def search_batch(self, queries: Iterable, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` over many (term_ids, query_weights) pairs."""
        return [self.search(term_ids, weights, k) for term_ids, weights in queries]

    def postings_touched(self, term_ids) -> int:
        """Number of postings a query with these term ids reads (unknown ids read none)."""
        terms, _ = self._known(term_ids, np.zeros(np.size(term_ids), np.float32))
        return int((self.offsets[terms + 1] - self.offsets[terms]).sum())

    def nonzeros_per_doc(self) -> np.ndarray:
        """Number of stored postings per document [N] int64."""
        return np.bincount(self.postings, minlength=self.n_docs).astype(np.int64)

    def keep_largest(self, n_postings: int) -> "InvertedIndex":
        """A copy holding only the n_postings largest weights (ties: lower term, then doc first).

        One global weight threshold, so indexes of different models can be compared at the
        same number of non-zeros (matched sparsity) without re-encoding the corpus.
        """
        n_postings = max(0, min(int(n_postings), len(self.postings)))
        terms = np.repeat(np.arange(self.vocab_size), np.diff(self.offsets))
        keep = np.zeros(len(self.postings), bool)
        keep[np.argsort(-self.weights.astype(np.float64), kind="stable")[:n_postings]] = True
        offsets = np.zeros_like(self.offsets)
        np.cumsum(np.bincount(terms[keep], minlength=self.vocab_size), out=offsets[1:])
        return InvertedIndex(offsets, self.postings[keep], self.weights[keep], self.n_docs, self.scale)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"offsets": self.offsets, "postings": self.postings, "weights": self.weights}

    def to_meta(self) -> dict:
        return {"n_docs": self.n_docs, "vocab_size": self.vocab_size,
                "weight_dtype": str(self.weights.dtype), "scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict, *, where: str = "index"):
        """Rebuild from `to_arrays()` / `to_meta()` output (e.g. loaded memory maps), checked."""
        # Plain ndarray views of the maps: np.memmap slicing costs Python overhead per query term.
        offsets, postings, weights = (np.asarray(arrays[name]).view(np.ndarray)
                                      for name in ("offsets", "postings", "weights"))
        consistent = (len(offsets) == meta["vocab_size"] + 1
                      and int(offsets[-1]) == len(postings) == len(weights))
        if not consistent or str(weights.dtype) not in WEIGHT_DTYPES or postings.dtype != np.int32:
            raise IndexFormatError(f"{where}: inconsistent postings ({len(offsets)} offsets, "
                                   f"{len(postings)} postings, {weights.dtype}{list(weights.shape)} weights)")
        return cls(offsets, postings, weights, int(meta["n_docs"]), float(meta["scale"]))

    def save(self, path: str | Path, *, model_fingerprint: str, method: str = METHOD,
             meta: dict | None = None) -> Path:
        meta = {**(meta or {}), **self.to_meta()}
        return save_index(path, self.to_arrays(), method=method, model_fingerprint=model_fingerprint,
                          meta=meta)

    @classmethod
    def load(cls, path: str | Path, *, model_fingerprint: str | None = None, method: str = METHOD,
             mmap: bool = True, verify: bool = True) -> "InvertedIndex":
        stored = load_index(path, method=method, model_fingerprint=model_fingerprint, mmap=mmap,
                            verify=verify)
        return cls.from_arrays(stored.arrays, stored.meta, where=str(path))
