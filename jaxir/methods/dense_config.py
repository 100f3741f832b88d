"""Configuration of the dense bi-encoder (`jaxir.methods.dense`)."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds


@dataclasses.dataclass(frozen=True)
class DenseConfig:
    # Local HF BERT folder; None = embedded all-MiniLM-L6-v2.
    model: str | None = None
    # Tokens per text incl. [CLS]/[SEP]; 256 is all-MiniLM-L6-v2's sentence_bert_config value.
    max_length: int = bounded(256, ge=3)
    # Texts per jitted forward call (rows are padded so the shape repeats).
    batch_size: int = bounded(32, ge=1)
    # "mean" (sentence-transformers default for MiniLM) or "cls".
    pooling: str = "mean"
    normalize: bool = True

    def __post_init__(self):
        check_bounds(self)  # every range is declared once, on its field
