"""Dense bi-encoder behind the retriever protocol: pooled vectors in an exact flat index.

`build_flat` / `open_flat` serve every method whose documents are single vectors (dense, I³).
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from jaxir.retrievers.base import FunctionSearcher, check_kind, config_option, option

CONFIG = "jaxir.methods.dense_config:DenseConfig"  # some options below override its fields


def build_flat(vectors: np.ndarray, doc_ids, out, *, fingerprint: str, meta: dict, kind: str) -> Path:
    """Document vectors [N, D] -> a FlatIndex folder of `kind` recording the model that made them."""
    from jaxir.index.flat import FlatIndex

    return FlatIndex(vectors, np.asarray(doc_ids, dtype=str)).save(out, model_fingerprint=fingerprint,
                                                                    meta=meta, kind=kind)


def open_flat(index_dir, *, fingerprint: str, encode_queries: Callable, kind: str) -> FunctionSearcher:
    """Exact inner-product search; an index of another kind or model is refused on open."""
    from jaxir.index.flat import FlatIndex

    index = FlatIndex.load(index_dir, model_fingerprint=fingerprint, kind=kind)

    def search(queries, k):
        ids, scores = index.search(encode_queries(queries), k)
        return [(row, s[: len(row)]) for row, s in zip(ids, scores)]
    return FunctionSearcher(search)


@dataclasses.dataclass
class DenseRetriever:
    """Bi-encoder (default: all-MiniLM-L6-v2, mean pooled, normalised) + exact flat search."""

    model: str | None = option(None, "local Hugging Face BERT folder (default: embedded all-MiniLM-L6-v2)")
    doc_maxlen: int = config_option(CONFIG, "max_length", default=256, help="(queries and documents alike)")
    batch_size: int = config_option(CONFIG, "batch_size", default=32, search_only=True)
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = dataclasses.field(default="dense", init=False)
    index_kind = "dense"

    @cached_property
    def _encoder(self):
        """The DenseModel (weights loaded and jitted once per retriever)."""
        from jaxir.methods.dense import DenseModel
        from jaxir.methods.dense_config import DenseConfig

        cfg = DenseConfig(model=self.model, max_length=self.doc_maxlen, batch_size=self.batch_size)
        return DenseModel(cfg)

    def _retriever(self):
        return self._encoder

    def encode(self, texts, kind: str = "query"):
        """Texts -> float32 [N, H] unit vectors (queries and documents share the encoder)."""
        check_kind(kind)
        return self._encoder.encode(list(texts), desc=f"encode {kind}s", what=kind, progress=self.progress)

    def build(self, doc_ids, texts, out):
        r = self._retriever()
        return build_flat(r.encode(texts, desc="encode corpus", what="document", progress=self.progress),
                          doc_ids, out, fingerprint=r.fingerprint, meta={"max_length": self.doc_maxlen},
                          kind=self.index_kind)

    def open(self, index_dir):
        r = self._retriever()
        return open_flat(index_dir, fingerprint=r.fingerprint,
                         encode_queries=lambda q: r.encode(q, desc="encode queries", what="query",
                                                           progress=self.progress),
                         kind=self.index_kind)
