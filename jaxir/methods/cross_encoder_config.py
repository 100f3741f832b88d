"""Configuration of the cross-encoder reranker (`jaxir.methods.cross_encoder`)."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds


@dataclasses.dataclass(frozen=True)
class CrossEncoderConfig:
    # Local HF BERT folder for the backbone; None = embedded all-MiniLM-L6-v2.
    model: str | None = None
    # Tokens per (query, document) pair incl. [CLS] and both [SEP]s; documents are cut first.
    pair_maxlen: int = bounded(256, ge=4)
    # Rerank-time weight of the cross-encoder score against the first stage (both min-max; 0 = first
    # stage only); None = cross-encoder only.
    alpha: float | None = bounded(None, ge=0.0, le=1.0)
    # Pairs per jitted forward at rerank time.
    rerank_batch_size: int = bounded(32, ge=1)
    # Backbone dropout while training (hidden and attention); None = the backbone config's.
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # Seeds the new head (and, with a random backbone, the encoder).
    seed: int = bounded(0, ge=0)
    # [CLS] goes through BERT's pooler, tanh(W h + b), before the head, as in Hugging Face's
    # BertForSequenceClassification; imported checkpoints of that layout set it. Off: the head
    # reads [CLS] itself (exported as sentence-transformers modules Transformer, Pooling, Dense).
    pooler: bool = False

    def __post_init__(self):
        check_bounds(self)  # every range and choice is declared once, on its field
