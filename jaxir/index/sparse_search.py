"""Inference-free sparse search: query text -> IDF-weighted WordPieces -> inverted index (NumPy only).

    q_t = idf_t for each distinct WordPiece t of the query (special/unreachable ids dropped)
    s(q, d) = sum_t q_t w_{d,t}    score-at-a-time over the query's posting lists, top k

Document weights are stored as uint8 with one global scale (w ~ stored * max_w / 255). Why: the
weights are log-saturated, so they live in a small range (0 .. ~3-5) where a linear 8-bit grid
errs by at most max_w / 510 per posting (~0.2 % of the largest weight, less than the 0.4 %
relative precision Lucene's rank_features keep), and a posting costs 1 byte instead of 2 (fp16)
next to its 4-byte doc id. fp16/float32 remain available (`dtype=`).

The index folder holds the postings, the external doc ids, the IDF table used for queries and
the ids queries must skip, so a search needs nothing but the index and the tokenizer (whose
vocabulary fingerprint must match the one recorded at build time).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, EmptyInputError, IndexFormatError
from .inverted import InvertedIndex, NoKnownTermsWarning
from .query_pool import map_queries
from .store import load_index, save_index
from ..text.idf import tokenizer_vocab, vocab_fingerprint
from ..text.tokenize import single_text_encoder

METHOD = "learned_sparse"
DEFAULT_DTYPE = "uint8"


class SparseIndex:
    """Inverted postings of learned document weights + the query-side IDF table and doc ids."""

    def __init__(self, inverted: InvertedIndex, doc_ids: np.ndarray, idf: np.ndarray,
                 skip_ids: np.ndarray, tokenizer, meta: dict | None = None, min_idf: float = 0.0):
        self.inverted, self.doc_ids, self.tokenizer = inverted, doc_ids, tokenizer
        self.idf = np.asarray(idf, np.float32)
        self.skip_ids = np.asarray(skip_ids, np.int64)
        self.meta = dict(meta or {})
        if self.idf.shape != (inverted.vocab_size,):
            raise IndexFormatError(f"idf {self.idf.shape} does not match vocab {inverted.vocab_size}")
        # Query terms that can score: idf above the floor and not skipped. A floor > 0 trades the
        # little score of near-stopwords for the postings they cost. Kept as a set of Python ints:
        # intersecting a query's ids with it runs in C.
        scoring = self.idf > max(0.0, float(min_idf))
        scoring[self.skip_ids[(self.skip_ids >= 0) & (self.skip_ids < len(self.idf))]] = False
        self._scoring_ids = frozenset(np.flatnonzero(scoring).tolist())
        self._encode = single_text_encoder(tokenizer)

    @classmethod
    def build(cls, doc_vectors: Iterable[tuple[Sequence[int], Sequence[float]]], *,
              doc_ids: Sequence[str], idf: np.ndarray, tokenizer, skip_ids: Sequence[int] | None = None,
              dtype: str = DEFAULT_DTYPE) -> "SparseIndex":
        """Index per-document (term ids [T], weights [T]) pairs given in doc_ids order.

        skip_ids: ids dropped from queries (default: the tokenizer's special tokens).
        """
        idf = np.asarray(idf, np.float32)
        inverted = InvertedIndex.build(doc_vectors, vocab_size=len(idf), dtype=dtype)
        ids = np.asarray([str(d) for d in doc_ids], dtype=str)
        if len(ids) != inverted.n_docs:
            raise DataError(f"{len(ids)} doc_ids for {inverted.n_docs} document vectors")
        if skip_ids is None:
            skip_ids = tokenizer.all_special_ids
        return cls(inverted, ids, idf, np.unique(np.asarray(skip_ids, np.int64)), tokenizer,
                   {"vocab_sha256": vocab_fingerprint(tokenizer_vocab(tokenizer))})

    def query_vector(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Distinct WordPiece ids [T] (ascending) with idf > 0 and their weights [T] float32."""
        if not isinstance(query, str) or not query.strip():
            raise EmptyInputError(f"query {query!r} is empty")
        # A query is a handful of ids: a set intersection beats np.unique on arrays this small.
        ids = np.array(sorted(self._scoring_ids.intersection(self._encode(query))), np.int64)
        return ids, self.idf[ids]

    def search(self, query: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        """Top-k (doc ids [<=k], scores [<=k] float32), score desc, ties by index order.

        A query with no weighted term (only special, unknown or zero-IDF tokens) warns with
        NoKnownTermsWarning and returns an empty result.
        """
        terms, weights = self.query_vector(query)
        if terms.size == 0:
            warnings.warn(f"query {query!r} has no token with an IDF weight; returning no results",
                          NoKnownTermsWarning, stacklevel=2)
            return [], np.zeros(0, np.float32)
        rows, scores = self.search_terms(terms, weights, k)  # warns itself if nothing matched
        return self.doc_ids[rows].tolist(), scores

    def search_terms(self, terms: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (row indices, scores) for an already weighted query (`query_vector`'s output)."""
        # Learned-sparse queries have many WordPieces with short lists: one vectorised pass.
        return self.inverted.search(terms, weights, k, ordered=False)

    def search_batch(self, queries: Iterable[str], k: int = 10, *,
                     threads: int | None = 1) -> list[tuple[list[str], np.ndarray]]:
        """`search` for each query, in order, over `threads` (None: the machine's cores; one by
        default: the Python tokenising holds the GIL, and 2 threads ran BM25 at 0.90x)."""
        return map_queries(lambda q: self.search(q, k), list(queries), threads)

    def postings_touched(self, query: str) -> int:
        """Postings a search for `query` reads."""
        return self.inverted.postings_touched(self.query_vector(query)[0])

    def save(self, path: str | Path, *, model_fingerprint: str, meta: dict | None = None) -> Path:
        arrays = {**self.inverted.to_arrays(), "doc_ids": self.doc_ids, "idf": self.idf,
                  "skip_ids": self.skip_ids}
        meta = {**self.meta, **(meta or {}), **self.inverted.to_meta()}
        return save_index(path, arrays, method=METHOD, model_fingerprint=model_fingerprint, meta=meta)

    @classmethod
    def load(cls, path: str | Path, *, tokenizer, model_fingerprint: str | None = None,
             mmap: bool = True, verify: bool = True, min_idf: float = 0.0) -> "SparseIndex":
        """Open an index; the model fingerprint (when given) and the tokenizer's vocabulary must match.

        min_idf: query terms with idf <= min_idf are dropped (their postings are never read).
        """
        stored = load_index(path, method=METHOD, model_fingerprint=model_fingerprint, mmap=mmap,
                            verify=verify)
        inverted = InvertedIndex.from_arrays(stored.arrays, stored.meta, where=str(path))
        want, have = stored.meta.get("vocab_sha256"), vocab_fingerprint(tokenizer_vocab(tokenizer))
        if want != have:
            raise IndexFormatError(f"{path} was built for vocabulary {want!r}; this tokenizer's is {have!r}")
        arrays = {name: np.asarray(stored.arrays[name]) for name in ("doc_ids", "idf", "skip_ids")}
        return cls(inverted, arrays["doc_ids"], arrays["idf"], arrays["skip_ids"], tokenizer,
                   stored.meta, min_idf=min_idf)
