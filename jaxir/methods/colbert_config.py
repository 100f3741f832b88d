"""Configuration of ColBERT (`jaxir.methods.colbert`): token lengths, projection, loss."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds, one_of


@dataclasses.dataclass(frozen=True)
class ColBERTConfig:
    # Local HF BERT folder for the backbone; None = embedded all-MiniLM-L6-v2.
    model: str | None = None
    # Query length incl. [CLS] [Q] .. [SEP]; always padded with [MASK] to exactly this.
    query_maxlen: int = bounded(32, ge=4)
    # Document length incl. [CLS] [D] .. [SEP]: 220 for indexing; jaxir.recipes.colbert trains
    # (and so exports checkpoints) at 180, ColBERTv2's training length.
    doc_maxlen: int = bounded(220, ge=4)
    # Output dimension of the token projection.
    dim: int = bounded(128, ge=1)
    # Mask string.punctuation tokens out of documents (and so out of the index).
    mask_punctuation: bool = True
    # Let tokens attend to the query's [MASK] padding (ColBERTv2 default: no).
    attend_to_mask_tokens: bool = False
    # Marker tokens put after [CLS]: ColBERT's [unused0]/[unused1]; PyLate adds "[Q] "/"[D] ".
    query_marker: str = "[unused0]"
    doc_marker: str = "[unused1]"
    # Token similarity; "cosine" (inner product of unit vectors) is the only one implemented.
    similarity: str = one_of("cosine", ("cosine",))
    # Temperature of the KL term (divides teacher and student scores).
    distill_temperature: float = 1.0
    # True: KL to teacher scores; False: n-way cross-entropy with label column 0.
    distillation: bool = True
    # Add the in-batch cross-entropy term (own hard negatives excluded).
    in_batch_negatives: bool = True
    # Backbone dropout while training (hidden and attention); None = the backbone config's.
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # Seed of the fresh projection when no trained checkpoint is loaded.
    seed: int = bounded(0, ge=0)
    # Texts per jitted forward call when encoding text lists.
    batch_size: int = bounded(32, ge=1)

    def __post_init__(self):
        check_bounds(self)  # every range and choice is declared once, on its field
