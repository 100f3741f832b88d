"""BM25 lexical prior for inference-free sparse documents (NumPy only).

    w_{d,t} = prior_weight · tf_{d,t} / (tf_{d,t} + k1 · (1 - b + b · dl_d / avgdl)) + head_scale · w^head_{d,t}

(head_scale is 1 in training; an index may weigh the head less, see SparseConfig.head_scale.)

tf and dl count the WordPieces of the whole document (no special tokens, no truncation); with
`stems`, complete words count per stem class (`jaxir.methods.stem_classes`). With
IDF-weighted queries, s(q, d) = sum_t idf_t * w_{d,t}, the prior alone is BM25 over WordPieces
(SciFact test nDCG@10 0.6751 against 0.6863 for word-level BM25), so the MLM head only has to learn
what the teachers add on top of exact matching. Why: distilled from ~760 SciFact queries the head
alone stays far below BM25 (best 0.6171); on top of the prior it reaches 0.6802-0.6844
(docs/results-log.md, "a BM25 lexical prior under the head").

avgdl belongs to the corpus being indexed, as in BM25: it is measured over that corpus at
index time (and over the training corpus during training) and recorded in the index.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxir.errors import DataError
from jaxir.text.bm25_weights import DEFAULT_B, DEFAULT_K1, tf_saturation
from jaxir.methods.stem_classes import StemClasses


@dataclasses.dataclass(frozen=True)
class LexicalPrior:
    """The BM25 document side over one corpus: k1, b, its average WordPiece length, a weight."""

    avgdl: float
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    weight: float = 1.0
    # Document-side stemming (`jaxir.methods.stem_classes`): inflections share one tf and weight.
    stems: StemClasses | None = dataclasses.field(default=None, compare=False, repr=False)

    def meta(self) -> dict:
        """What an index records about its prior (JSON-ready)."""
        return {"avgdl": self.avgdl, "k1": self.k1, "b": self.b, "weight": self.weight,
                "stem": self.stems is not None}

    @classmethod
    def fit(cls, token_lists: Sequence[Sequence[int]], **kw) -> "LexicalPrior":
        """avgdl over a corpus given as WordPiece id lists (no special tokens)."""
        if len(token_lists) == 0:
            raise DataError("cannot measure the average length of zero documents")
        return cls(avgdl=max(float(np.mean([len(t) for t in token_lists])), 1.0), **kw)

    def vector(self, token_ids: Sequence[int], *, skip_ids=(), keep_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """One document's (distinct term ids [T] int32 ascending, prior weights [T] float32).

        skip_ids never get prior weight (special tokens: no query contains them); with keep_ids
        only those ids do (the scoring vocabulary).
        """
        keys = np.asarray(token_ids, np.int64) if self.stems is None else self.stems.keys(token_ids)
        ids, tf = np.unique(keys, return_counts=True)
        w = self.weight * tf_saturation(tf, np.full(len(tf), len(token_ids)), avgdl=self.avgdl,
                                        k1=self.k1, b=self.b)
        if self.stems is not None:
            ids, w = self.stems.expand(ids, w)
        keep = ~np.isin(ids, np.asarray(skip_ids, np.int64))
        if keep_ids is not None:
            keep &= np.isin(ids, np.asarray(keep_ids, np.int64))
        return ids[keep].astype(np.int32), w[keep].astype(np.float32)

    def max_terms(self, token_lists: Sequence[Sequence[int]], **kw) -> int:
        """The most terms any document's prior vector has (stemming can give more than its tokens)."""
        return max((len(self.vector(t, **kw)[0]) for t in token_lists), default=0)

    def padded(self, token_lists: Sequence[Sequence[int]], width: int, **kw) -> tuple[np.ndarray, np.ndarray]:
        """Documents' vectors as (ids [n, width] int32, weights [n, width] float32), zero-padded.

        A fixed width keeps a jitted training step from recompiling; a document with more than
        `width` distinct terms keeps its `width` largest prior weights (`max_terms` gives the
        width that keeps them all).
        """
        ids = np.zeros((len(token_lists), width), np.int32)
        vals = np.zeros((len(token_lists), width), np.float32)
        for row, tokens in enumerate(token_lists):
            t, w = self.vector(tokens, **kw)
            if len(t) > width:
                top = np.sort(np.argsort(-w, kind="stable")[:width])
                t, w = t[top], w[top]
            ids[row, : len(t)], vals[row, : len(t)] = t, w
        return ids, vals


def add_vectors(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Sum of two sparse vectors given as (ids, weights): ids ascending, weights float32."""
    ids = np.concatenate([np.asarray(a[0], np.int64), np.asarray(b[0], np.int64)])
    vals = np.concatenate([np.asarray(a[1], np.float64), np.asarray(b[1], np.float64)])
    uniq, inverse = np.unique(ids, return_inverse=True)
    return uniq.astype(np.int32), np.bincount(inverse, weights=vals, minlength=len(uniq)).astype(np.float32)
