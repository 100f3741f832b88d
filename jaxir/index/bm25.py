"""BM25 over the shared inverted index, with every posting's BM25 weight precomputed at build time.

Lucene variant (the bm25s default), for term t in doc d with term frequency tf and length dl:

    idf_t  = ln(1 + (N - df_t + 0.5) / (df_t + 0.5))
    w_{t,d} = idf_t · tf / (tf + k1 · (1 - b + b · dl / avgdl))
    s(q, d) = Σ_{t in q} w_{t,d}

Query semantics follow bm25s: the query is analyzed like the documents, terms missing from the
vocabulary are dropped, and a repeated query term counts once per occurrence. A query with no
known term returns an empty result (with a NoKnownTermsWarning) where bm25s returns k zero-score
docs. Document lengths count the terms left after stopword removal.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import DataError, EmptyInputError, IndexFormatError
from .query_pool import map_queries
from ..text.analysis import get_analyzer
from ..text.bm25_weights import DEFAULT_B, DEFAULT_K1, lucene_weights
from .inverted import InvertedIndex
from .store import load_index, save_index

METHOD = "bm25"
BM25_METHODS = ("lucene",)
def _analyze_corpus(texts: Iterable[str], analyze) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """(vocab term -> id in first-seen order, term ids of all docs concatenated [T], lengths [N])."""
    vocab: dict[str, int] = defaultdict(itertools.count().__next__)  # a new term gets the next id
    term_ids: list[int] = []
    lengths: list[int] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"document {i} is a {type(text).__name__}, not a str")
        ids = list(map(vocab.__getitem__, analyze(text)))
        term_ids.extend(ids)
        lengths.append(len(ids))
    return dict(vocab), np.asarray(term_ids, np.int64), np.asarray(lengths, np.int64)


def _check_doc_ids(doc_ids: Iterable, n_docs: int) -> np.ndarray:
    ids = np.asarray([str(d) for d in doc_ids], dtype=str)
    if len(ids) != n_docs:
        raise DataError(f"{len(ids)} doc_ids for {n_docs} documents")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"doc id {str(uniq[np.argmax(counts > 1)])!r} occurs {counts.max()} times")
    return ids


class BM25Index:
    """A BM25 index: inverted postings of BM25 weights, the term vocabulary and external doc ids."""

    def __init__(self, inverted: InvertedIndex, vocab: np.ndarray, doc_ids: np.ndarray, params: dict):
        self.inverted = inverted
        self.vocab = vocab
        self.doc_ids = doc_ids
        self.params = params
        self.analyzer = get_analyzer(params["analyzer"])
        self._term_id = {term: i for i, term in enumerate(vocab.tolist())}

    @classmethod
    def build(cls, texts: Iterable[str], *, doc_ids: Iterable[str], analyzer: str = "word",
              k1: float = DEFAULT_K1, b: float = DEFAULT_B, method: str = "lucene",
              dtype: str = "float32") -> "BM25Index":
        """Index `texts` (streamed once); doc_ids [N] are the external ids returned by search.

        dtype: storage of the posting weights, "float32", "float16" or "uint8" (see inverted.py).
        """
        if method not in BM25_METHODS:
            raise ValueError(f"BM25 method must be one of {BM25_METHODS}, got {method!r}")
        vocab, terms, lengths = _analyze_corpus(texts, get_analyzer(analyzer))
        n_docs, n_terms = len(lengths), len(vocab)
        if n_docs == 0:
            raise EmptyInputError("cannot build a BM25 index from zero documents")
        if n_terms == 0:
            raise EmptyInputError(f"all {n_docs} documents are empty after analysis")
        ids = _check_doc_ids(doc_ids, n_docs)
        # One (doc, term) key per token; unique keys with counts give tf per posting.
        keys, tf = np.unique(np.repeat(np.arange(n_docs), lengths) * n_terms + terms, return_counts=True)
        docs, post_terms = np.divmod(keys, n_terms)
        df = np.bincount(post_terms, minlength=n_terms)
        avgdl = float(lengths.mean())
        weights = lucene_weights(tf, lengths[docs], df[post_terms], n_docs=n_docs, avgdl=avgdl, k1=k1, b=b)
        inverted = InvertedIndex.from_coo(docs, post_terms, weights, n_docs=n_docs, vocab_size=n_terms,
                                          dtype=dtype)
        params = {"analyzer": analyzer, "k1": k1, "b": b, "bm25_method": method, "avgdl": avgdl}
        return cls(inverted, np.asarray(list(vocab), dtype=str), ids, params)

    def query_terms(self, query: str) -> np.ndarray:
        """Known term ids [T] of the analyzed query, repeats kept (each occurrence scores)."""
        if not isinstance(query, str) or not query.strip():
            raise EmptyInputError(f"query {query!r} is empty")
        term_id = self._term_id
        return np.asarray([term_id[t] for t in self.analyzer(query) if t in term_id], np.int64)

    def score_all(self, query: str) -> np.ndarray:
        """BM25 scores of every document [N] float32."""
        terms = self.query_terms(query)
        return self.inverted.score_all(terms, np.ones(len(terms), np.float32))

    def search(self, query: str, k: int = 10) -> tuple[list[str], np.ndarray]:
        """Top-k (doc ids [<=k], scores [<=k] float32), score desc, ties by index order."""
        terms = self.query_terms(query)
        indices, scores = self.inverted.search(terms, np.ones(len(terms), np.float32), k)
        return self.doc_ids[indices].tolist(), scores

    def search_batch(self, queries: Iterable[str], k: int = 10, *,
                     threads: int | None = 1) -> list[tuple[list[str], np.ndarray]]:
        """`search` for each query, in order, over `threads` (None: the machine's cores; one by
        default: the Python tokenising holds the GIL, and 2 threads ran BM25 at 0.90x)."""
        return map_queries(lambda query: self.search(query, k), list(queries), threads)

    def save(self, path: str | Path) -> Path:
        arrays = {**self.inverted.to_arrays(), "vocab": self.vocab, "doc_ids": self.doc_ids}
        meta = {**self.inverted.to_meta(), **self.params}
        return save_index(path, arrays, method=METHOD, model_fingerprint=self.analyzer.fingerprint, meta=meta)

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True, verify: bool = True) -> "BM25Index":
        stored = load_index(path, method=METHOD, mmap=mmap, verify=verify)
        meta = stored.meta
        inverted = InvertedIndex.from_arrays(stored.arrays, meta, where=str(path))
        params = {key: meta[key] for key in ("analyzer", "k1", "b", "bm25_method", "avgdl")}
        vocab, doc_ids = (np.asarray(stored.arrays[name]) for name in ("vocab", "doc_ids"))
        index = cls(inverted, vocab, doc_ids, params)
        if index.analyzer.fingerprint != stored.manifest["model_fingerprint"]:
            raise IndexFormatError(
                f"{path} was built with analyzer {stored.manifest['model_fingerprint']!r}, "
                f"but this install analyzes text as {index.analyzer.fingerprint!r}"
            )
        return index
