"""Cross-encoder reranking behind the registry: load a trained reranker, score candidates.

A reranker checkpoint is a model folder (`jaxir.models.saved_model`, method "cross-encoder")
whose model.json also records the backbone's BertConfig; loading checks the method and the param
tree and raises CheckpointError otherwise. A training folder holding `reranker/` loads too, as do
0.1 exports (the engine's checkpoint layout).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxir.retrievers.base import option

METHOD = "cross-encoder"
EXPORT_DIR = "reranker"  # inside a training output folder


class CrossEncoderReranker:
    """A CrossEncoder with trained params; ``rerank(query, doc_texts) -> scores [n]``."""

    def __init__(self, model, params):
        from jaxir.methods.cross_encoder import PairScorer

        self.model, self.params = model, params
        self.config = model.config
        self._scorer = PairScorer(model, params)
        self.source: str | None = None  # the folder it was loaded from

    def save(self, directory: str | Path) -> Path:
        from jaxir.models.saved_model import save_model

        return save_model(directory, method=METHOD, config=self.config, params=self.params,
                          extra={"bert": self.model.bert_config.to_dict()})

    @classmethod
    def load(cls, ckpt_dir: str | Path, *, alpha: float | None = None,
             rerank_batch_size: int | None = None) -> "CrossEncoderReranker":
        """Restore from a reranker folder (or a training folder holding ``reranker/``).

        ``alpha``/``rerank_batch_size`` override the saved rerank-time settings.
        """
        import jax

        from jaxir.methods.cross_encoder import CrossEncoder, CrossEncoderConfig, bert_config_from_dict
        from jaxir.models.saved_model import config_from_dict, load_model

        path = Path(ckpt_dir)
        if (path / EXPORT_DIR).is_dir():
            path = path / EXPORT_DIR
        overrides = {k: v for k, v in (("alpha", alpha), ("rerank_batch_size", rerank_batch_size))
                     if v is not None}
        from jaxir.interop import detect_format, load_foreign

        if detect_format(path, method=METHOD) != "jaxir":  # a sentence-transformers CrossEncoder
            reranker = cls(*load_foreign(path, method=METHOD, overrides=overrides))
            reranker.source = str(ckpt_dir)
            return reranker
        built = {}

        def make_config(raw, extra):
            return dataclasses.replace(config_from_dict(CrossEncoderConfig, raw), **overrides)

        def abstract(config, extra):
            from jaxir.errors import CheckpointError

            if not extra.get("bert"):
                raise CheckpointError(f"{path}: model.json records no backbone config ('extra.bert')")
            built["model"] = CrossEncoder(config, bert_config=bert_config_from_dict(extra["bert"]))
            return jax.eval_shape(built["model"].init, jax.random.PRNGKey(0))

        _, params, _ = load_model(path, method=METHOD, make_config=make_config, abstract_params=abstract)
        reranker = cls(built["model"], params)
        reranker.source = str(ckpt_dir)
        return reranker

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
class CrossEncoderRerank:
    """Registry entry: a trained cross-encoder over a first stage's candidates (no index)."""

    checkpoint: str | None = option(None, "trained model folder (cross-encoder: required)")
    alpha: float | None = option(None, "weight of its score against the first stage "
                                       "(both min-max; 0 = first stage only; default: the checkpoint's)",
                                 ge=0.0, le=1.0)
    batch_size: int | None = option(None, "texts per encoder call", search_only=True, ge=1)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = None

    def open_reranker(self, index_dir=None) -> CrossEncoderReranker:
        if not self.checkpoint:
            raise FileNotFoundError(f"--method {METHOD} needs --checkpoint")
        return CrossEncoderReranker.load(self.checkpoint, alpha=self.alpha,
                                         rerank_batch_size=self.batch_size)
