"""SPLADE (siamese learned sparse) behind the retriever protocol.

The documents are indexed exactly as the inference-free method indexes them (`SparseRetriever.build`:
MLM-head weights over the corpus's scoring vocabulary, the same inverted index); a query is
encoded by the same model ([CLS] query [SEP] -> log-saturated, max-pooled MLM logits) and its
weighted terms are searched in that index. Checkpoints are model folders of method "splade" (a
`SparseConfig` with query_encoder "mlm"); without one, the backbone + the identity-initialised head.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxir.retrievers.base import MethodCheckpoints
from jaxir.retrievers.sparse import CONFIG, IDF_FILE, SparseRetriever

METHOD = "splade"

CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.sparse:SparseModel",
                                defaults=(("query_encoder", "mlm"),))
load_checkpoint = CHECKPOINTS.load


def save_checkpoint(path: str | Path, config, params, *, idf_file: str | Path | None = None) -> Path:
    """Write a SPLADE SparseConfig + params as a model folder (with the idf.json of its scoring
    vocabulary when given)."""
    if config.query_encoder != "mlm":
        raise ValueError("a splade checkpoint needs query_encoder 'mlm' (inference-free models are 'sparse')")
    from jaxir.text.idf import idf_files

    return CHECKPOINTS.save(path, config, params, files=idf_files(idf_file, IDF_FILE) if idf_file else None)


@dataclasses.dataclass
class SpladeRetriever(SparseRetriever):
    """MLM-head weights on both sides (SPLADE) over the learned-sparse inverted index."""

    name: str = dataclasses.field(default=METHOD, init=False)
    checkpoints = CHECKPOINTS
    query_encoder = "mlm"

    def _encode_queries(self, model, params, texts):
        from jaxir.retrievers.sparse import term_weights

        return term_weights(model.tokenizer, model.encode_query_texts(params, texts, progress=self.progress))

    def _searcher(self, index, model, params):
        from jaxir.index.query_pool import resolve_threads

        return SpladeSearcher(index, model, params, resolve_threads(self.threads), self.progress)


@dataclasses.dataclass
class SpladeSearcher:
    index: object
    model: object
    params: object
    threads: int = 1
    progress: bool = True

    def encode(self, queries) -> list[tuple[np.ndarray, np.ndarray]]:
        """Query texts -> (term ids, weights) over the index's scoring vocabulary."""
        vocab = self.model.scoring_ids(self.index.idf)
        return self.model.encode_query_texts(self.params, list(queries), vocab_ids=vocab, progress=self.progress)

    def search(self, queries, k: int):
        """Query texts -> [(doc ids, scores)] best first (empty for a query with no positive weight)."""
        from jaxir.index.query_pool import map_queries

        def one(vector):
            rows, scores = self.index.search_terms(vector[0], vector[1], k)
            return self.index.doc_ids[rows].tolist(), scores
        return map_queries(one, self.encode(queries), self.threads)

    def stats(self, queries) -> dict:
        """Mean non-zeros per document, postings read and non-zeros per encoded query."""
        vectors = self.encode(queries)
        nnz = self.index.inverted.nonzeros_per_doc()
        return {"nonzeros_per_doc": float(np.mean(nnz)) if len(nnz) else 0.0,
                "postings_per_query": float(np.mean([self.index.inverted.postings_touched(t) for t, _ in vectors])),
                "query_terms": float(np.mean([len(t) for t, _ in vectors]))}
