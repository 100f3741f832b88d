"""Configuration of MICE (`jaxir.methods.mice`): layer split, segment layout, rerank settings."""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import bounded, check_bounds

# Document layouts: name -> special tokens before the document text (sinks: [CLS] [SEP]); every
# layout ends the text with [SEP].
DOC_LAYOUTS = {"sinks": 2, "bare": 0}
# The masks per layer range: the keys of jaxir.ops.masks.MICE_CONFIGURATIONS, named here so that
# the config imports no jax (tests/methods/test_mice.py checks they agree).
CONFIGURATIONS = ("cross-encoder", "late-full", "mice", "mice-no-qq")


@dataclasses.dataclass(frozen=True)
class MiceConfig:
    # Local HF BERT folder for the backbone when no cross-encoder is given; None = embedded MiniLM.
    model: str | None = None
    # Backbone dropout while training (hidden and attention); None = the backbone config's.
    dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # Masks per layer range: one of CONFIGURATIONS (jaxir.ops.masks.MICE_CONFIGURATIONS).
    configuration: str = "mice"
    # l_f: layers 1..l_f see query and document apart (document states precomputed after it).
    fusion_layer: int = bounded(3, ge=0)
    # L': layers run in all (the interaction layers are l_f+1..L'); None = every backbone layer.
    num_layers: int | None = bounded(None, ge=1)
    # Tokens of the query segment [CLS] q [SEP] (padded: the document starts at this position).
    query_maxlen: int = bounded(32, ge=3)
    # Tokens of the document segment (with its sinks under doc_layout "sinks").
    doc_maxlen: int = bounded(160, ge=2)
    # Document segment of layers 1..l_f: "sinks" = [CLS] [SEP] d [SEP], query-independent copies of
    # the two tokens documents attend to most in the cross-encoder; "bare" = d [SEP] (the first
    # layout, kept for comparison).
    doc_layout: str = "sinks"
    # Rerank-time weight of the MICE score against the first stage (both min-max); None = MICE only.
    alpha: float | None = bounded(None, ge=0.0, le=1.0)
    # Candidates per jitted interaction call (a query's depth-100 list is one call at 100).
    rerank_batch_size: int = bounded(100, ge=1)
    # Seeds a fresh score head when none is given.
    seed: int = bounded(0, ge=0)

    def __post_init__(self):
        check_bounds(self)  # the ranges declared on the fields; below, what relates two fields
        if self.doc_layout not in DOC_LAYOUTS:
            raise ValueError(f"unknown doc_layout {self.doc_layout!r}; choose from {list(DOC_LAYOUTS)}")
        if self.doc_maxlen < DOC_LAYOUTS[self.doc_layout] + 2:
            raise ValueError(f"doc_layout {self.doc_layout!r} needs doc_maxlen >= "
                             f"{DOC_LAYOUTS[self.doc_layout] + 2}, got {self.doc_maxlen}")
        if self.configuration not in CONFIGURATIONS:
            raise ValueError(f"unknown MICE configuration {self.configuration!r}; choose from "
                             f"{sorted(CONFIGURATIONS)}")
        if self.num_layers is not None and self.num_layers < self.fusion_layer:
            raise ValueError(f"need 0 <= fusion_layer <= num_layers: {self}")
        if self.configuration == "cross-encoder" and self.fusion_layer != 0:
            raise ValueError("configuration 'cross-encoder' attends across segments in every layer: "
                             f"it needs fusion_layer 0, got {self.fusion_layer}")
