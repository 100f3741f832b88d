"""MICE behind the registry: a reranker over stored document states (`jaxir.index.doc_states`).

`jaxir index --method mice --checkpoint CKPT` runs layers 1..l_f over every document and stores
the states (fp16 by default; optional IDF pruning and per-layer keys/values). At rerank time each
query runs its own layers 1..l_f once, then the interaction layers score all its candidates in
one jitted call. The store records the model fingerprint and the settings the states depend on
(l_f, segment lengths, document layout): states of another checkpoint, l_f or layout are refused, as is a
candidate the store does not hold.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxir.index.doc_states import STATE_DTYPES
from jaxir.retrievers.base import MethodCheckpoints, config_option, option

METHOD = "mice"
CONFIG = "jaxir.methods.mice_config:MiceConfig"  # some options below override its fields
CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.mice:MiceModel")
save_checkpoint = CHECKPOINTS.save
BUILD_BATCH = 32  # documents per jitted layers-1..l_f call at index time


def load_mice(checkpoint, overrides: dict | None = None):
    """(MiceModel, params) of a MICE folder; a cross-encoder folder gets the one-line hint to
    train MICE from it (it has no MICE config)."""
    from jaxir.errors import CheckpointError
    from jaxir.models.folders import model_folder
    from jaxir.models.saved_model import read_model_info

    if checkpoint is not None:
        try:
            method = read_model_info(model_folder(checkpoint))["method"]
        except CheckpointError:
            method = None
        if method == "cross-encoder":
            raise CheckpointError(f"{checkpoint} is a cross-encoder without a MICE config; train MICE from "
                                  f"it: jaxir train --recipe mice --init-from {checkpoint}")
    return CHECKPOINTS.load_model(checkpoint, overrides or {})


class MiceScorer:
    """Scores a query's candidates: by id from a state store, or (no store) from their texts."""

    def __init__(self, model, params, store=None):
        import jax

        self.model, self.params, self.store = model, params, store
        self.config = model.config
        self.takes_doc_ids = store is not None
        self.use_kv = bool(store is not None and store.has_kv)
        self._query = jax.jit(model.query_states)
        self._docs = jax.jit(model.doc_states)
        self._interact = jax.jit(model.interact)
        self.source: str | None = None

    def _query_states(self, query: str):
        q_ids, q_mask = self.model.query_arrays([query])
        return self._query(self.params, q_ids, q_mask), q_mask

    def score_one(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Scores [n] of one query's candidates (ids with a store, texts without)."""
        qs, q_mask = self._query_states(query)
        rows, out = self.config.rerank_batch_size, []
        for start in range(0, len(docs), rows):
            part = list(docs[start:start + rows])
            if self.store is not None:
                values, d_mask = self.store.gather(part, pad_to=rows, kv=self.use_kv)
                if self.use_kv:
                    n_inter = len(self.model.interaction)
                    s = self._interact(self.params, qs, q_mask, None, d_mask, values[:, :, :n_inter])
                else:
                    s = self._interact(self.params, qs, q_mask, values, d_mask)
            else:
                d_ids, d_mask = self.model.doc_arrays(part)
                pad = rows - len(part)
                d_ids, d_mask = (np.pad(a, ((0, pad), (0, 0))) for a in (d_ids, d_mask))
                s = self._interact(self.params, qs, q_mask, self._docs(self.params, d_ids, d_mask), d_mask)
            out.append(np.asarray(s, np.float32)[: len(part)])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def scores(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]], *,
               desc: str | None = None) -> list[np.ndarray]:
        return [self.score_one(q, d) for q, d in
                tqdm(list(zip(queries, doc_lists)), desc=desc, unit="query", disable=desc is None)]

    def rerank_many(self, queries, doc_lists, first_stage=None) -> list[np.ndarray]:
        from jaxir.methods.cross_encoder import interpolate_all

        return interpolate_all(self.scores(queries, doc_lists), first_stage, self.config.alpha, queries)

    def describe(self) -> dict:
        return {"alpha": self.config.alpha, "checkpoint": self.source,
                "fusion_layer": self.config.fusion_layer, "layers": self.model.last_layer,
                "configuration": self.config.configuration, "precomputed_kv": self.use_kv,
                "states": None if self.store is None else {**self.store.bytes_per_token(),
                                                          "dtype": self.store.meta["state_dtype"],
                                                          "prune_tokens": self.store.meta["prune_tokens"]}}


@dataclasses.dataclass
class MiceReranker:
    """Registry entry: MICE reranking over its stored document states."""

    checkpoint: str | None = option(None, "trained MICE model folder (default: the backbone + a fresh head)")
    alpha: float | None = config_option(CONFIG, "alpha", help="(default: the checkpoint's)", search_only=True)
    num_layers: int | None = config_option(CONFIG, "num_layers", search_only=True,
                                           help="(default: the checkpoint's, the L' it was trained with; "
                                                "another needs --untrained-layers)")
    untrained_layers: bool = option(False, "allow --num-layers other than the trained L': the head then reads "
                                           "[CLS] states it was never trained on", search_only=True)
    batch_size: int | None = config_option(CONFIG, "rerank_batch_size", search_only=True)
    state_dtype: str | None = option(None, "stored state dtype: float16 (default) or float32", choices=STATE_DTYPES)
    prune_tokens: int | None = option(None, "keep each document's k highest-IDF tokens (default 0: all)", ge=0)
    precompute_kv: bool | None = option(None, "also store every interaction layer's keys/values (default false)")
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = "mice-states"

    @cached_property
    def _loaded(self):
        from jaxir.errors import OptionError

        base = {"alpha": self.alpha, "rerank_batch_size": self.batch_size}
        model, params = load_mice(self.checkpoint, base)
        if self.num_layers is None or self.num_layers == model.last_layer:
            return model, params
        if self.checkpoint is not None and not self.untrained_layers:
            raise OptionError(f"{self.checkpoint} was trained with L' = {model.last_layer} layers; --num-layers "
                              f"{self.num_layers} runs a depth its head never saw (train with --model.num_layers "
                              f"{self.num_layers}, or pass --untrained-layers to measure it anyway)")
        return load_mice(self.checkpoint, {**base, "num_layers": self.num_layers})

    @cached_property
    def _fingerprint(self) -> str:
        model, params = self._loaded
        return model.fingerprint(params)

    def _expect(self) -> dict:
        c = self._loaded[0].config
        return {"fusion_layer": c.fusion_layer, "query_maxlen": c.query_maxlen, "doc_maxlen": c.doc_maxlen,
                "doc_layout": c.doc_layout}

    def build(self, doc_ids, texts, out) -> Path:
        import jax

        from jaxir.index.doc_states import corpus_idf, prune_positions, write_doc_states
        from jaxir.text import tokenize

        model, params = self._loaded
        dtype, keep = self.state_dtype or "float16", self.prune_tokens or 0
        tokens = tokenize(model.tokenizer, list(texts), what="document")
        idf = corpus_idf(tokens, model.bert_config.vocab_size) if keep else None
        states_fn = jax.jit(model.doc_states)
        kv_fn = jax.jit(model.doc_kv) if self.precompute_kv else None
        states, kvs = [], [] if kv_fn else None
        for start in tqdm(range(0, len(tokens), BUILD_BATCH), desc="mice: document states", unit="batch",
                          disable=not self.progress):
            part = tokens[start:start + BUILD_BATCH]
            d_ids, d_mask = model.doc_arrays(token_lists=part)
            pad = BUILD_BATCH - len(part)
            d_ids, d_mask = (np.pad(a, ((0, pad), (0, 0))) for a in (d_ids, d_mask))
            h = states_fn(params, d_ids, d_mask)
            kv = np.asarray(kv_fn(params, h)) if kv_fn else None
            h = np.asarray(h)
            for i in range(len(part)):
                n = int(d_mask[i].sum())
                keep_at = prune_positions(d_ids[i, :n], idf, keep, model.sinks) if keep else np.arange(n)
                states.append(h[i, keep_at].astype(dtype))
                if kvs is not None:
                    kvs.append(kv[i, keep_at].astype(dtype))
        c = model.config
        meta = {**self._expect(), "prune_tokens": keep, "configuration": c.configuration,
                "kv_layers": list(model.interaction) if kvs is not None else [],
                "hidden": model.bert_config.hidden_size}
        return write_doc_states(out, list(doc_ids), states, kv=kvs, fingerprint=self._fingerprint,
                                meta=meta, state_dtype=dtype)

    def open_reranker(self, index_dir=None) -> MiceScorer:
        from jaxir.errors import IndexFormatError
        from jaxir.index.doc_states import DocStateStore

        model, params = self._loaded
        store = None
        if index_dir is not None:
            store = DocStateStore.open(index_dir, fingerprint=self._fingerprint, expect=self._expect())
            if store.has_kv and list(model.interaction) != store.meta["kv_layers"][: len(model.interaction)]:
                raise IndexFormatError(f"{index_dir}: keys/values stored for layers {store.meta['kv_layers']}, "
                                       f"the model's interaction layers are {list(model.interaction)}")
        reranker = MiceScorer(model, params, store)
        reranker.source = self.checkpoint
        return reranker
