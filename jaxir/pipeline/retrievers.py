"""First-stage retrievers behind one interface: build an index from a corpus, open it, search.

Each retriever is (build, open); an opened searcher maps query texts to ranked doc ids.
Model-based retrievers record the model fingerprint in the index manifest and refuse to
search an index built with other weights.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

Hits = list[tuple[list[str], np.ndarray]]  # per query: (doc ids, scores), best first


class Searcher(Protocol):
    def search(self, queries: Sequence[str], k: int) -> Hits: ...


class Retriever(Protocol):
    name: str

    def build(self, doc_ids: Sequence[str], texts: Sequence[str], out: Path) -> Path: ...

    def open(self, index_dir: Path) -> Searcher: ...


@dataclasses.dataclass
class BM25:
    """Lucene BM25 over word tokens (stopwords + English stemming) or WordPiece tokens."""

    analyzer: str = "word"
    k1: float = 1.5
    b: float = 0.75
    name: str = "bm25"

    def build(self, doc_ids, texts, out):
        from jaxir.index.bm25 import BM25Index

        return BM25Index.build(texts, doc_ids=doc_ids, analyzer=self.analyzer, k1=self.k1, b=self.b).save(out)

    def open(self, index_dir):
        from jaxir.index.bm25 import BM25Index

        index = BM25Index.load(index_dir)
        return _Wrapped(lambda qs, k: index.search_batch(qs, k))


@dataclasses.dataclass
class Dense:
    """Bi-encoder (default: all-MiniLM-L6-v2, mean pooled, normalised) + exact flat search."""

    model: str | None = None
    max_length: int = 256
    batch_size: int = 32
    name: str = "dense"

    def _retriever(self):
        from jaxir.methods.dense import DenseConfig, DenseRetriever

        cfg = DenseConfig(model=self.model, max_length=self.max_length, batch_size=self.batch_size)
        return DenseRetriever(cfg)

    def build(self, doc_ids, texts, out):
        from jaxir.index.flat import FlatIndex

        r = self._retriever()
        emb = r.encode(texts, desc="encode corpus", what="document")
        return FlatIndex(emb, np.asarray(doc_ids, dtype=str)).save(
            out, model_fingerprint=r.fingerprint, meta={"max_length": self.max_length})

    def open(self, index_dir):
        from jaxir.index.flat import FlatIndex

        r = self._retriever()
        index = FlatIndex.load(index_dir, model_fingerprint=r.fingerprint)

        def search(queries, k):
            ids, scores = index.search(r.encode(queries, desc="encode queries", what="query"), k)
            return [(row, s[: len(row)]) for row, s in zip(ids, scores)]
        return _Wrapped(search)


@dataclasses.dataclass
class _Wrapped:
    fn: object

    def search(self, queries, k):
        return self.fn(list(queries), k)


def get_retriever(name: str, **options) -> Retriever:
    """Method name -> retriever; unknown option names are an error, None values are ignored."""
    from jaxir.pipeline.colbert_retriever import ColBERT
    from jaxir.pipeline.sparse_retriever import LearnedSparse

    table = {"bm25": BM25, "dense": Dense, "colbert": ColBERT, "sparse": LearnedSparse}
    if name not in table:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(table)}")
    cls = table[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    opts = {k: v for k, v in options.items() if v is not None and k in fields}
    return cls(**opts)
