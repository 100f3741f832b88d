"""ColBERT (late interaction) behind the retriever protocol: build a PLAID index, open, search.

Search modes of an opened index (one index serves all three):
  default        PLAID (ncells / centroid_score_threshold / ndocs follow k unless set)
  exhaustive     exact MaxSim of every document, from the decompressed residual vectors
  uncompressed   exact MaxSim of every document from the fp16 copy (index built with it)
A checkpoint is a model folder written by `save_checkpoint` (`jaxir.models.saved_model`); without
one the model is the backbone + an untrained projection seeded by `ColBERTConfig.seed`. The index
records the model fingerprint and an index built with other weights is refused.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import numpy as np

from jaxir.errors import IndexFormatError
from jaxir.index.codec import NBITS_CHOICES
from jaxir.index.query_pool import map_queries, resolve_threads
from jaxir.retrievers.base import MethodCheckpoints, check_kind, config_option, option, threads_option

METHOD = "colbert"
CONFIG = "jaxir.methods.colbert_config:ColBERTConfig"  # some options below override its fields


CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.colbert:ColBERTModel")
save_checkpoint, load_checkpoint = CHECKPOINTS.save, CHECKPOINTS.load


@dataclasses.dataclass
class ColBERTRetriever:
    """ColBERTv2 + PLAID. `checkpoint=None`: MiniLM (or `model`) + untrained seeded projection."""

    checkpoint: str | None = option(None, "trained model folder (default: the backbone + an untrained, seeded head)")
    model: str | None = option(None, "backbone folder when no checkpoint is given (default: embedded all-MiniLM-L6-v2)")
    nbits: int = option(2, "residual bits per dimension (1, 2 or 4)", choices=NBITS_CHOICES)
    uncompressed: bool = option(False, "keep (index) / search (eval) an fp16 copy of the token vectors")
    doc_maxlen: int | None = config_option(CONFIG, "doc_maxlen", help="(default: the checkpoint's)")
    # Search-time options do not change the index, so they stay out of repr (the cache key).
    exhaustive: bool = option(False, "exact MaxSim over all decompressed docs instead of PLAID",
                              search_only=True)
    ncells: int | None = option(None, "PLAID: centroids probed per query token (default: by k)",
                                search_only=True, ge=1)
    centroid_score_threshold: float | None = option(
        None, "PLAID: centroids scoring below this are pruned (default: by k)", search_only=True)
    ndocs: int | None = option(None, "PLAID: candidates kept after stage 2 (default: by k)",
                               search_only=True, ge=1)
    batch_size: int | None = config_option(CONFIG, "batch_size", search_only=True)
    threads: int | None = threads_option()
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = "colbert-plaid"

    @cached_property
    def _loaded(self):
        """(ColBERTModel, params), loaded once."""
        return CHECKPOINTS.load_model(self.checkpoint, {"doc_maxlen": self.doc_maxlen, "batch_size": self.batch_size},
                     self.model)

    def encode(self, texts, kind: str = "query"):
        """Queries -> float32 [N, query_maxlen, dim] (every position a MaxSim term); documents ->
        one float32 [n_tok_i, dim] matrix per text (the token vectors the index compresses)."""
        check_kind(kind)
        model, params = self._loaded
        encode = model.encode_query_texts if kind == "query" else model.encode_doc_texts
        return encode(params, list(texts), progress=self.progress)

    def build(self, doc_ids, texts, out) -> Path:
        from jaxir.retrievers.colbert_build import IndexOptions, build_colbert_index

        model, params = self._loaded
        options = IndexOptions(nbits=self.nbits, keep_fp16=self.uncompressed, progress=self.progress)
        report = build_colbert_index(model, params, list(doc_ids), list(texts), out, options,
                                     meta={"checkpoint": self.checkpoint})
        return report.path

    def append(self, index_dir, doc_ids, texts, *, fields: dict | None = None) -> None:
        """Encode `texts` with this model and append them to the PLAID index at `index_dir` with
        its codec (atomic; `fields` replace manifest entries such as the corpus record)."""
        from jaxir.index.plaid_update import append_to_folder

        from jaxir.index.manifest import read_manifest

        model, params = self._loaded
        built = read_manifest(index_dir).get("model_fingerprint")
        if built != model.fingerprint(params):  # checked again under the lock, before the swap
            raise IndexFormatError(f"{index_dir} was built with model {built!r}, but the model in use is "
                                   f"{model.fingerprint(params)!r}: nothing appended")
        docs = model.encode_doc_texts(params, list(texts), progress=self.progress)
        append_to_folder(index_dir, docs, list(doc_ids), model_fingerprint=model.fingerprint(params),
                         fields=fields)

    def open(self, index_dir) -> "ColBERTSearcher":
        from jaxir.index.plaid import PlaidIndex
        from jaxir.index.plaid_update import FP16_ARRAY

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
        return ColBERTSearcher(model, params, index, tokens, self.exhaustive, plaid, self.progress,
                               resolve_threads(self.threads))


@dataclasses.dataclass
class ColBERTSearcher:
    model: object
    params: object
    index: object
    tokens_fp16: np.ndarray | None
    exhaustive: bool
    plaid: dict
    progress: bool = True
    threads: int = 1

    def search_vectors(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """One encoded query [Lq, dim] -> (scores [k'], index rows [k'])."""
        from jaxir.index import exact

        if self.tokens_fp16 is not None:
            scores = exact.maxsim_scores(q, self.tokens_fp16, self.index.doclens)
            return exact.live_top_k(self.index, scores, k)
        if self.exhaustive:
            return exact.exhaustive_search(self.index, q, k)
        return self.index.search(q, k, **self.plaid)

    def search(self, queries, k: int):
        """Query texts -> [(doc ids, scores)] best first, min(k, N) hits each."""
        queries = list(queries)
        if not queries:
            return []
        encoded = self.model.encode_query_texts(self.params, queries, progress=self.progress)
        self.index.warm(plaid=self.tokens_fp16 is None and not self.exhaustive)
        found = map_queries(lambda q: self.search_vectors(q, k), list(encoded), self.threads)
        return [([str(x) for x in self.index.doc_ids[rows]], scores) for scores, rows in found]

