"""ColBERT as a reranker: exact MaxSim of a first stage's candidates, read from a ColBERT index.

`jaxir eval --method colbert-rerank --checkpoint CKPT --index DIR --rerank bm25 --depth 100`
scores each query's top `depth` first-stage candidates by exact MaxSim against their token
vectors in DIR (the fp16 copy when the index has one and `--uncompressed` is given, else the
decompressed residuals), the late-interaction point of comparison for the cross-encoder and MICE
at equal candidates. The index is the one `--method colbert` builds and searches (same options,
same fingerprint check); a candidate it does not hold is an error naming it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxir.retrievers.base import option
from jaxir.retrievers.colbert import ColBERTRetriever


@dataclasses.dataclass
class ColBERTReranker(ColBERTRetriever):
    """ColBERT's options and index; rescoring candidates instead of searching."""

    alpha: float | None = option(None, "weight of its score against the first stage (both min-max; "
                                       "default: MaxSim alone)", search_only=True, ge=0.0, le=1.0)
    name: str = dataclasses.field(default="colbert-rerank", init=False)

    def open_reranker(self, index_dir=None) -> "MaxSimScorer":
        if index_dir is None:
            raise ValueError("colbert-rerank reads token vectors from a ColBERT index: give --index DIR")
        reranker = MaxSimScorer(self.open(index_dir), self.alpha)
        reranker.source = self.checkpoint
        return reranker


class MaxSimScorer:
    """Candidates by id -> exact MaxSim scores from the opened index's token vectors."""

    takes_doc_ids = True

    def __init__(self, searcher, alpha: float | None = None):
        self.searcher, self.alpha = searcher, alpha
        index = searcher.index  # deleted documents are not the index's: never scored
        self.row_of = {str(index.doc_ids[i]): int(i) for i in index.live(np.arange(index.num_docs))}
        self.source: str | None = None

    def rows(self, doc_ids) -> np.ndarray:
        missing = [d for d in doc_ids if d not in self.row_of]
        if missing:
            from jaxir.errors import IndexFormatError
            raise IndexFormatError(f"the ColBERT index has no document {missing[0]!r} "
                                   f"({len(missing)} candidates missing): was it built from this corpus?")
        return np.asarray([self.row_of[d] for d in doc_ids], np.int64)

    def score_rows(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact MaxSim [len(rows)] of one encoded query [Lq, dim] against index rows."""
        from jaxir.index import exact

        s, index = self.searcher, self.searcher.index
        q = exact.prepare_query(q, None, index.codec.dim)
        if s.tokens_fp16 is not None:
            def token_scores(t):
                return q @ np.asarray(s.tokens_fp16[t], np.float32).T
        else:
            def token_scores(t):
                return q @ index.decompress_tokens(t).T
        return exact.score_docs(rows, index.doc_offsets, index.doclens, token_scores)

    def rerank_many(self, queries, doc_lists, first_stage=None) -> list[np.ndarray]:
        from jaxir.methods.cross_encoder import interpolate_all

        s = self.searcher
        encoded = s.model.encode_query_texts(s.params, list(queries), progress=False)
        scores = [self.score_rows(q, self.rows(d)) for q, d in zip(encoded, doc_lists)]
        return interpolate_all(scores, first_stage, self.alpha, queries)

    def describe(self) -> dict:
        s = self.searcher
        return {"alpha": self.alpha, "checkpoint": self.source,
                "vectors": "fp16" if s.tokens_fp16 is not None else f"{s.index.codec.nbits}-bit residuals"}
