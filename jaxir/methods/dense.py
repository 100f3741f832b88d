"""Dense bi-encoder (sentence-transformers recipe): mean-pooled, L2-normalised BERT states.

With the embedded all-MiniLM-L6-v2 this reproduces the model's published SciFact result.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxir.methods.dense_config import DenseConfig
from jaxir.methods.encoding import encode_pooled
from jaxir.models.bert import BertEncoder
from jaxir.models.heads import l2_normalize, mean_pool
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.text import load_tokenizer


def embed(config, bert_config, params, input_ids, attention_mask, token_type_ids):
    """Pure forward: ids [B, L] -> pooled (normalised) vectors [B, H]."""
    hidden = BertEncoder(bert_config).apply({"params": params}, input_ids, attention_mask, token_type_ids)
    pooled = mean_pool(hidden, attention_mask) if config.pooling == "mean" else hidden[:, 0]
    return l2_normalize(pooled) if config.normalize else pooled


class DenseModel:
    """Holds (config, params, tokenizer); encoding is a jitted pure function of params."""

    method = "dense"

    def __init__(self, config: DenseConfig = DenseConfig(), params=None, bert_config=None):
        self.config = config
        if params is None:
            bert_config, params = load_bert(config.model)
        self.bert_config, self.params = bert_config, params
        self.tokenizer = load_tokenizer(config.model)
        self._fn = jax.jit(lambda p, i, m, t: embed(config, bert_config, p, i, m, t))

    @property
    def fingerprint(self) -> str:
        return params_fingerprint(self.params)

    def encode(self, texts: Sequence[str], *, desc: str = "encode", progress: bool = True,
               what: str = "text") -> np.ndarray:
        """Texts -> float32 [N, H] (unit norm when config.normalize)."""
        return encode_pooled(self._fn, self.params, self.tokenizer, texts,
                             max_length=self.config.max_length, batch_size=self.config.batch_size,
                             desc=desc, progress=progress, what=what)
