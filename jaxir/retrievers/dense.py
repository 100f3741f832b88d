"""Dense bi-encoder behind the retriever protocol: pooled vectors in an exact flat index."""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxir.retrievers.base import FunctionSearcher, option


@dataclasses.dataclass
class Dense:
    """Bi-encoder (default: all-MiniLM-L6-v2, mean pooled, normalised) + exact flat search."""

    model: str | None = option(None, "local Hugging Face BERT folder (default: embedded all-MiniLM-L6-v2)")
    doc_maxlen: int = option(256, "tokens per document (dense: also per query)")
    batch_size: int = option(32, "texts per encoder call", search_only=True)
    name: str = dataclasses.field(default="dense", init=False)
    index_kind = "dense"

    def _retriever(self):
        from jaxir.methods.dense import DenseConfig, DenseRetriever

        cfg = DenseConfig(model=self.model, max_length=self.doc_maxlen, batch_size=self.batch_size)
        return DenseRetriever(cfg)

    def build(self, doc_ids, texts, out):
        from jaxir.index.flat import FlatIndex

        r = self._retriever()
        emb = r.encode(texts, desc="encode corpus", what="document")
        return FlatIndex(emb, np.asarray(doc_ids, dtype=str)).save(
            out, model_fingerprint=r.fingerprint, meta={"max_length": self.doc_maxlen})

    def open(self, index_dir):
        from jaxir.index.flat import FlatIndex

        r = self._retriever()
        index = FlatIndex.load(index_dir, model_fingerprint=r.fingerprint)

        def search(queries, k):
            ids, scores = index.search(r.encode(queries, desc="encode queries", what="query"), k)
            return [(row, s[: len(row)]) for row, s in zip(ids, scores)]
        return FunctionSearcher(search)
