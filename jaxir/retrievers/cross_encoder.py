"""Cross-encoder reranking behind the registry: load a trained reranker, score candidates.

A cross-encoder is saved and loaded as every method is (`MethodCheckpoints`, method
"cross-encoder"): a model folder that also records the backbone's BertConfig, a recipe's output
folder holding one (`OUT/cross-encoder/`), or a sentence-transformers CrossEncoder.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxir.retrievers.base import MethodCheckpoints, config_option, option

METHOD = "cross-encoder"
CONFIG = "jaxir.methods.cross_encoder_config:CrossEncoderConfig"  # some options below override its fields
CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.cross_encoder:CrossEncoderModel")


class CrossEncoderScorer:
    """A CrossEncoderModel with trained params; ``rerank(query, doc_texts) -> scores [n]``."""

    def __init__(self, model, params):
        from jaxir.methods.cross_encoder import PairScorer

        self.model, self.params = model, params
        self.config = model.config
        self._scorer = PairScorer(model, params)
        self.source: str | None = None  # the folder it was loaded from

    def save(self, directory: str | Path) -> Path:
        return CHECKPOINTS.save(directory, self.config, self.params, bert_config=self.model.bert_config)

    @classmethod
    def load(cls, checkpoint: str | Path, *, alpha: float | None = None,
             rerank_batch_size: int | None = None) -> "CrossEncoderScorer":
        """Restore from a model folder (or a recipe's output folder holding one); ``alpha`` /
        ``rerank_batch_size`` override the saved rerank-time settings."""
        scorer = cls(*CHECKPOINTS.load_model(checkpoint, {"alpha": alpha, "rerank_batch_size": rerank_batch_size}))
        scorer.source = str(checkpoint)
        return scorer

    def rerank(self, query: str, doc_texts: Sequence[str], *,
               first_stage_scores: Sequence[float] | None = None) -> np.ndarray:
        """Scores [n] for the documents (higher is better), interpolated when config.alpha is set."""
        return self.rerank_many([query], [doc_texts], [first_stage_scores])[0]

    def scores(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]], *,
               desc: str | None = None) -> list[np.ndarray]:
        """Raw cross-encoder scores, per query [n_q]; batched across queries (length buckets).

        desc: label of a progress bar over pair batches (None: no bar).
        """
        return self._scorer.score_texts(queries, doc_lists, desc=desc)

    def rerank_many(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]],
                    first_stage: Sequence | None = None) -> list[np.ndarray]:
        """Per query scores [n_q]: raw, or interpolated with ``first_stage`` when alpha is set."""
        from jaxir.methods.cross_encoder import interpolate_all

        return interpolate_all(self.scores(queries, doc_lists), first_stage, self.config.alpha, queries)

    def describe(self) -> dict:
        return {"alpha": self.config.alpha, "checkpoint": self.source}


@dataclasses.dataclass
class CrossEncoderReranker:
    """Registry entry: a trained cross-encoder over a first stage's candidates (no index)."""

    checkpoint: str | None = option(None, "trained model folder (cross-encoder: required)")
    alpha: float | None = config_option(CONFIG, "alpha", help="(default: the checkpoint's)")
    batch_size: int | None = config_option(CONFIG, "rerank_batch_size", search_only=True)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = None

    def open_reranker(self, index_dir=None) -> CrossEncoderScorer:
        if not self.checkpoint:
            raise FileNotFoundError(f"--method {METHOD} needs --checkpoint")
        return CrossEncoderScorer.load(self.checkpoint, alpha=self.alpha, rerank_batch_size=self.batch_size)
