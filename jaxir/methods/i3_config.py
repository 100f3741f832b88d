"""Configuration of I³ (`jaxir.methods.i3`): the towers, the reconstruction and the loss."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds, one_of

OBJECTIVES = ("contrastive", "distill")
INTERACTOR_INITS = ("identity", "last-layer")


@dataclasses.dataclass(frozen=True)
class I3Config:
    # Local HF BERT folder for both towers; None = embedded all-MiniLM-L6-v2.
    model: str | None = None
    # Query tokens incl. [CLS]/[SEP]; also the reconstructor's length Lq and its target length.
    query_maxlen: int = bounded(32, ge=3)
    # Passage tokens incl. [CLS]/[SEP].
    doc_maxlen: int = bounded(256, ge=3)
    # One encoder for queries and passages (the paper's default: two, untied).
    tie: bool = False
    # False: the plain dual encoder (no reconstructor, no interactor), the claim's baseline.
    implicit_interaction: bool = True
    # "mean" (all-MiniLM-L6-v2's own pooling) or "cls" (the paper's, for BERT backbones).
    pooling: str = one_of("mean", ("mean", "cls"))
    # L2-normalise query and passage vectors (scores are cosines divided by temperature).
    normalize: bool = True
    # Scores are divided by this in every loss (0.05 = sentence-transformers' scale 20).
    temperature: float = bounded(0.05, gt=0.0)
    # "contrastive" (in-batch + hard negatives) or "distill" (KL to a reranker's scores).
    objective: str = one_of("contrastive", OBJECTIVES)
    # alpha: weight of the contrastive term (the reference's 1; KL has weight 1 when distilling).
    contrastive_weight: float = bounded(1.0, ge=0.0)
    # beta in the first pass over the train queries (the reference's 1/10; 0.0002 distilling).
    reconstruction_weight: float = bounded(0.1, ge=0.0)
    # beta's factor per further pass (the reference's 1/10: beta = 1/10^epoch); 1 = constant.
    reconstruction_decay: float = bounded(0.1, gt=0.0, le=1.0)
    # How the interactor starts: "identity" (zero residual branches: the untrained passage vector
    # is the plain one's) or "last-layer" (a copy of the encoder's last layer).
    interactor_init: str = one_of("identity", INTERACTOR_INITS)
    # Backbone dropout while training (hidden and attention); None = the backbone config's.
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # Temperature of the KL term (divides teacher and student logits).
    distill_temperature: float = 1.0
    # Contrastive term: every passage of the batch is a candidate for every query.
    in_batch_negatives: bool = True
    # Seeds the fresh layers (cross-attention, MLM head) when no checkpoint is loaded.
    seed: int = bounded(0, ge=0)
    # Texts per jitted encode call.
    batch_size: int = bounded(32, ge=1)

    def __post_init__(self):
        check_bounds(self)  # every range and choice is declared once, on its field
