"""I³ behind the retriever protocol: passage vectors (query-independent, implicit interaction
with a reconstructed query folded in) in an exact flat index; search is a dot product.

A checkpoint is a model folder written by `save_checkpoint` (`jaxir.models.saved_model`,
method "i3"); without one the model is the backbone in both towers + a freshly seeded
reconstructor cross-attention and MLM head (`I3Config.seed`). The index records the model
fingerprint: an index built with other weights is refused.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

from jaxir.retrievers.base import MethodCheckpoints, check_kind, config_option, option
from jaxir.retrievers.dense import build_flat, open_flat

METHOD = "i3"
CONFIG = "jaxir.methods.i3_config:I3Config"  # some options below override its fields
CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.i3:I3Model")
save_checkpoint, load_checkpoint = CHECKPOINTS.save, CHECKPOINTS.load


@dataclasses.dataclass
class I3Retriever:
    """I³ dual encoder (or, from a checkpoint trained without the interaction, the plain one)."""

    checkpoint: str | None = option(None, "trained model folder (default: the backbone + untrained, seeded new layers)")
    model: str | None = option(None, "backbone folder when no checkpoint is given (default: embedded all-MiniLM-L6-v2)")
    doc_maxlen: int | None = config_option(CONFIG, "doc_maxlen", help="(default: the checkpoint's)")
    batch_size: int | None = config_option(CONFIG, "batch_size", search_only=True)
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = "i3"

    @cached_property
    def _loaded(self):
        """(I3Model, params), loaded once."""
        return CHECKPOINTS.load_model(self.checkpoint, {"doc_maxlen": self.doc_maxlen,
                                                        "batch_size": self.batch_size}, self.model)

    @cached_property
    def _fingerprint(self) -> str:
        """The loaded params' hash (over both towers: computed once, used by build and open)."""
        model, params = self._loaded
        return model.fingerprint(params)

    def encode(self, texts, kind: str = "query"):
        """Texts -> float32 [N, H]: the query tower, or the passage tower (what the index stores)."""
        check_kind(kind)
        model, params = self._loaded
        encode = model.encode_query_texts if kind == "query" else model.encode_passage_texts
        return encode(params, list(texts), progress=self.progress)

    def build(self, doc_ids, texts, out):
        model, params = self._loaded
        vectors = model.encode_passage_texts(params, texts, progress=self.progress)
        return build_flat(vectors, doc_ids, out, fingerprint=self._fingerprint,
                          meta={"doc_maxlen": model.config.doc_maxlen,
                                "implicit_interaction": model.config.implicit_interaction},
                          kind=self.index_kind)

    def open(self, index_dir):
        model, params = self._loaded
        return open_flat(index_dir, fingerprint=self._fingerprint,
                         encode_queries=lambda q: model.encode_query_texts(params, q, progress=self.progress),
                         kind=self.index_kind)
