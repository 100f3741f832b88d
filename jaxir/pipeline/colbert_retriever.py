"""ColBERT (late interaction) behind the retriever protocol: build a PLAID index, open, search.

Search modes of an opened index (one index serves all three):
  default        PLAID (ncells / centroid_score_threshold / ndocs follow k unless set)
  exhaustive     exact MaxSim of every document, from the decompressed residual vectors
  uncompressed   exact MaxSim of every document from the fp16 copy (index built with it)
A checkpoint is a folder written by `save_checkpoint` (colbert_config.json + params.npz); without
one the model is the backbone + an untrained projection seeded by `ColBERTConfig.seed`. The index
records the model fingerprint and an index built with other weights is refused.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import numpy as np

from jaxir.errors import IndexFormatError
from jaxir.models.params_io import load_model, load_or_init, save_model

CONFIG_FILE = "colbert_config.json"


def save_checkpoint(path: str | Path, config, params) -> Path:
    """Write a ColBERTConfig + params pytree (see `jaxir.models.params_io`)."""
    return save_model(path, CONFIG_FILE, config, params)


def load_checkpoint(path: str | Path):
    """Read (ColBERTConfig, params) written by `save_checkpoint`."""
    from jaxir.methods.colbert import ColBERTConfig

    return load_model(path, CONFIG_FILE, lambda raw: ColBERTConfig(**raw), what="ColBERT")


@dataclasses.dataclass
class ColBERT:
    """ColBERTv2 + PLAID. `checkpoint=None`: MiniLM (or `model`) + untrained seeded projection."""

    checkpoint: str | None = None
    # Backbone folder when no checkpoint is given (None = embedded all-MiniLM-L6-v2).
    model: str | None = None
    nbits: int = 2
    # Also store fp16 vectors and search them exhaustively (the uncompressed reference).
    uncompressed: bool = False
    # Document length override (None: the checkpoint's doc_maxlen, library default 220).
    max_length: int | None = None
    # Search-time options do not change the index, so they stay out of repr (the cache key).
    exhaustive: bool = dataclasses.field(default=False, repr=False)
    ncells: int | None = dataclasses.field(default=None, repr=False)
    centroid_score_threshold: float | None = dataclasses.field(default=None, repr=False)
    ndocs: int | None = dataclasses.field(default=None, repr=False)
    batch_size: int | None = dataclasses.field(default=None, repr=False)
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = "colbert"

    @cached_property
    def _loaded(self):
        """(ColBERTModel, params), loaded once."""
        from jaxir.methods.colbert import ColBERTConfig, ColBERTModel

        return load_or_init(self.checkpoint, load_checkpoint, ColBERTConfig(model=self.model),
                            ColBERTModel, what="ColBERT",
                            overrides={"doc_maxlen": self.max_length, "batch_size": self.batch_size})

    def build(self, doc_ids, texts, out) -> Path:
        from jaxir.pipeline.colbert_index import IndexOptions, build_colbert_index

        model, params = self._loaded
        options = IndexOptions(nbits=self.nbits, keep_fp16=self.uncompressed, progress=self.progress)
        report = build_colbert_index(model, params, list(doc_ids), list(texts), out, options,
                                     meta={"checkpoint": self.checkpoint})
        return report.path

    def open(self, index_dir) -> "ColBERTSearcher":
        from jaxir.index.plaid import PlaidIndex
        from jaxir.pipeline.colbert_index import FP16_ARRAY

        model, params = self._loaded
        index = PlaidIndex.load(index_dir, model_fingerprint=model.fingerprint(params))
        tokens = None
        if self.uncompressed:
            file = Path(index_dir) / f"{FP16_ARRAY}.npy"
            if not file.is_file():
                raise IndexFormatError(f"{index_dir} has no {FP16_ARRAY}: rebuild it with uncompressed=True")
            tokens = np.load(file, mmap_mode="r")  # already checksummed by PlaidIndex.load
            if tokens.shape != (index.num_tokens, index.codec.dim):
                raise IndexFormatError(f"{file} is {tokens.shape}, expected "
                                       f"{(index.num_tokens, index.codec.dim)}")
        plaid = {"ncells": self.ncells, "centroid_score_threshold": self.centroid_score_threshold,
                 "ndocs": self.ndocs}
        return ColBERTSearcher(model, params, index, tokens, self.exhaustive, plaid, self.progress)


@dataclasses.dataclass
class ColBERTSearcher:
    model: object
    params: object
    index: object
    tokens_fp16: np.ndarray | None
    exhaustive: bool
    plaid: dict
    progress: bool = True

    def search_vectors(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """One encoded query [Lq, dim] -> (scores [k'], index rows [k'])."""
        from jaxir.index import exact

        if self.tokens_fp16 is not None:
            scores = exact.maxsim_scores(q, self.tokens_fp16, self.index.doclens)
            return exact.top_k(scores, np.arange(len(scores)), k)
        if self.exhaustive:
            return exact.exhaustive_search(self.index, q, k)
        return self.index.search(q, k, **self.plaid)

    def search(self, queries, k: int):
        """Query texts -> [(doc ids, scores)] best first, min(k, N) hits each."""
        queries = list(queries)
        if not queries:
            return []
        encoded = self.model.encode_query_texts(self.params, queries, progress=self.progress)
        hits = []
        for q in encoded:
            scores, rows = self.search_vectors(q, k)
            hits.append(([str(x) for x in self.index.doc_ids[rows]], scores))
        return hits

