"""MICE: a minimal-interaction cross-encoder whose early layers see query and document apart.

Layout (fixed, so a document's states never depend on the query it is paired with)::

    query segment   positions 0 .. Lq-1     [CLS] q [SEP] [PAD]..   token type 0   (Lq = query_maxlen)
    document        positions 0, Lq-1       [CLS] [SEP]             token type 0   (doc_layout "sinks")
                    positions Lq ..         d [SEP] [PAD]..         token type 1   (Ld = doc_maxlen in all)

    layers 1 .. l_f      block-diagonal: each segment attends within itself, so the document
                         states h_d = BERT_{1..l_f}(d) are precomputed at index time and the query
                         states h_q = BERT_{1..l_f}(q) once per query, not per candidate
    layers l_f+1 .. L'   interaction ("mice"): query rows attend to the query and to the frozen
                         document states; document rows are not updated (no document attention,
                         no document FFN). L' <= L drops the last layers (num_layers).
    s(q, d)            = w . h_q^{L'}[CLS] + b    (the cross-encoder's score head)

`configuration` names the masks per layer range (`jaxir.ops.masks.MICE_CONFIGURATIONS`):
"cross-encoder", "late-full" (documents updated in the interaction layers), "mice",
"mice-no-qq". params = {"bert", "head"}: the cross-encoder's tree, so a trained cross-encoder
is the starting point as it is.

Choices made here (no public reference code exists; each is ours):
- The document text starts at position Lq for every query (the cross-encoder packs it right
  after the query); training from the cross-encoder absorbs the shift.
- The document segment carries its own copies of `[CLS]` and `[SEP]` ("sinks"): in the
  cross-encoder, document tokens put about a third of their attention on those two in layers
  2-4, and without them their states drift from the cross-encoder's (mean cosine to the
  cross-encoder's document states at layer 3 on SciFact pairs, pretrained MiniLM: 0.920 bare,
  0.958 with sinks; `tests/methods/test_mice.py`). The query's interaction layers see the copies as
  document keys. `doc_layout "bare"` keeps the first layout (`d [SEP]`).
- Interaction layers are the backbone's own layers (`TransformerLayer` over the query rows, the
  frozen document's keys and values as its `memory`); the document states give those keys and
  values through that layer's own K/V projections (`layer_key_values`; precomputable per layer:
  `doc_kv`).
- Training is Margin-MSE against the full cross-encoder's scores over (query, positive,
  negatives) tuples mined by BM25 (`loss_fn`).

`joint_scores` runs the same model end to end on the joint sequence under the masks (the
reference the split path is tested against); `pair_scores` / `interact` are the split path used
in training and reranking.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.methods.mice_config import DOC_LAYOUTS, MiceConfig
from jaxir.models.bert import (BertConfig, BertEncoder, attention_bias, bert_apply, dropout_keys, layer_key_values,
                               layer_module, merge_heads, split_heads)
from jaxir.models.heads import ScoreHead
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.ops import losses
from jaxir.ops.masks import MICE_CONFIGURATIONS, mice_masks
from jaxir.text import load_tokenizer, tokenize

METHOD = "mice"


class MiceModel:
    """Static parts (configs, tokenizer, starting params) + pure functions of params.

    bert_params/head_params: the cross-encoder to start from (a new head is seeded without one).
    """

    def __init__(self, config: MiceConfig = MiceConfig(), *, bert_config: BertConfig | None = None,
                 bert_params=None, head_params=None, tokenizer=None):
        if bert_config is None:
            bert_config, bert_params = load_bert(config.model)
        if config.fusion_layer > bert_config.num_layers or (config.num_layers or 0) > bert_config.num_layers:
            raise ValueError(f"fusion_layer {config.fusion_layer} / num_layers {config.num_layers} exceed "
                             f"the backbone's {bert_config.num_layers} layers (num_layers is in "
                             f"{max(1, config.fusion_layer)}..{bert_config.num_layers})")
        if config.query_maxlen + config.doc_maxlen > bert_config.max_position:
            raise ValueError(f"query_maxlen + doc_maxlen = {config.query_maxlen + config.doc_maxlen} "
                             f"> max_position {bert_config.max_position}")
        self.config, self.bert_config = config, bert_config.with_dropout(config.dropout)
        self._pretrained, self._head = bert_params, head_params
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        early, late, update = MICE_CONFIGURATIONS[config.configuration]
        self.early_mask, self.late_mask, self.updates_docs = early, late, update
        self.last_layer = config.num_layers or bert_config.num_layers
        self.sinks = DOC_LAYOUTS[config.doc_layout]  # leading [CLS] [SEP] copies of each document
        self.interaction = range(config.fusion_layer, self.last_layer)

    # ---- params -------------------------------------------------------------------------------
    def init(self, rng: jax.Array, batch: Any = None) -> dict:
        del batch
        from jaxir.methods.cross_encoder import init_pair_params

        return init_pair_params(rng, self.bert_config, self._pretrained, self._head)

    def description(self) -> dict:
        return {"method": METHOD, "model": dataclasses.asdict(self.config), "bert": self.bert_config.to_dict()}

    def fingerprint(self, params) -> str:
        return params_fingerprint(params)

    # ---- tokens -------------------------------------------------------------------------------
    def query_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`[CLS] q [SEP]` padded to query_maxlen -> ids, mask int32 [Q, Lq] (long queries cut)."""
        tok, width = self.tokenizer, self.config.query_maxlen
        rows = [[tok.cls_token_id, *t[: width - 2], tok.sep_token_id]
                for t in tokenize(tok, texts, what="query")]
        return _pad(rows, width, tok.pad_token_id)

    def doc_arrays(self, texts: Sequence[str] | None = None, *, token_lists=None) -> tuple[np.ndarray, np.ndarray]:
        """The document segment padded to doc_maxlen -> ids, mask int32 [N, Ld] (long documents
        cut): `[CLS] [SEP] d [SEP]` (layout sinks) or `d [SEP]` (bare)."""
        tok, width = self.tokenizer, self.config.doc_maxlen
        token_lists = tokenize(tok, texts, what="document") if token_lists is None else token_lists
        head = [tok.cls_token_id, tok.sep_token_id][: self.sinks]
        keep = width - self.sinks - 1
        return _pad([[*head, *t[:keep], tok.sep_token_id] for t in token_lists], width, tok.pad_token_id)

    def doc_layout_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and token types int32 [Ld] of the document segment, fixed for every query.

        bare: d [SEP] at Lq, Lq+1, .. (type 1). sinks: the copies of [CLS] and [SEP] sit where
        the cross-encoder has them for a query that fills its slot, [CLS] at 0 and [SEP] at
        Lq-1 (type 0), and d [SEP] follows from Lq (type 1), so every document token keeps the
        relative offsets to both it has in the cross-encoder."""
        lq, width = self.config.query_maxlen, self.config.doc_maxlen
        positions, types = lq + np.arange(width, dtype=np.int32), np.ones(width, np.int32)
        if self.sinks:
            positions = np.concatenate([[0, lq - 1], lq + np.arange(width - 2)]).astype(np.int32)
            types[:2] = 0
        return positions, types

    # ---- split path ---------------------------------------------------------------------------
    def _early(self, params, ids, mask, positions, token_types, rng=None) -> jax.Array:
        chex.assert_rank([ids, mask], 2)
        shape = ids.shape
        return bert_apply(self.bert_config, params["bert"], ids, mask, jnp.broadcast_to(token_types, shape),
                          end_layer=self.config.fusion_layer, position_ids=jnp.broadcast_to(positions, shape),
                          rng=rng)

    def doc_states(self, params, d_ids, d_mask, *, rng=None) -> jax.Array:
        """Document states after layer l_f, query-independent: [N, Ld] -> [N, Ld, H]."""
        positions, types = self.doc_layout_arrays()
        return self._early(params, d_ids, d_mask, positions, types, rng=rng)

    def query_states(self, params, q_ids, q_mask, *, rng=None) -> jax.Array:
        """Query states after layer l_f (once per query): [Q, Lq] -> [Q, Lq, H]."""
        return self._early(params, q_ids, q_mask, jnp.arange(q_ids.shape[1]), 0, rng=rng)

    def doc_kv(self, params, d_states) -> jax.Array:
        """Every interaction layer's keys and values of frozen document states:
        [N, Ld, H] -> [N, Ld, n_interaction, 2, H] (what `precompute_kv` stores)."""
        if self.updates_docs:
            raise ValueError(f"configuration {self.config.configuration!r} updates the documents: "
                             "their keys/values depend on the query and cannot be precomputed")
        out = [jnp.stack([merge_heads(a) for a in self._layer_kv(params, i, d_states)], axis=2)
               for i in self.interaction]
        return jnp.stack(out, axis=2) if out else jnp.zeros((*d_states.shape[:2], 0, 2, d_states.shape[-1]),
                                                            d_states.dtype)

    def _layer_kv(self, params, i, d_states):
        """Layer i's keys and values [n, heads, Ld, d] of document states [n, Ld, H]."""
        return layer_key_values(self.bert_config, params["bert"][f"layer_{i}"], d_states.astype(self.bert_config.dtype))

    def interact(self, params, q_states, q_mask, d_states, d_mask, d_kv=None, *, rng=None) -> jax.Array:
        """Scores [n] of n (query, document) pairs from their l_f states.

        q_states [1 or n, Lq, H], q_mask [1 or n, Lq] (one query's states broadcast over its
        candidates); d_states [n, Ld, H], d_mask [n, Ld]; d_kv [n, Ld, n_interaction, 2, H]
        precomputed keys/values (then d_states is not read and may be None).
        """
        n, cfg = d_mask.shape[0], self.bert_config
        q = jnp.broadcast_to(q_states, (n, *q_states.shape[1:])).astype(cfg.dtype)
        q_mask = jnp.broadcast_to(q_mask, (n, q_mask.shape[1]))
        if self.updates_docs:
            hidden = self._joint_layers(params, jnp.concatenate([q, d_states.astype(cfg.dtype)], 1),
                                        q_mask, d_mask, rng)
            return self._head_score(params, hidden[:, 0])
        # query rows attend to the query (not under mice-no-qq) and to the frozen document's keys
        q_bias = attention_bias(q_mask if self.late_mask == "query_to_doc" else jnp.zeros_like(q_mask), jnp.float32)
        d_bias = attention_bias(d_mask, jnp.float32)
        layer = layer_module()(cfg)  # rematerialised like the encoder's layers under FitConfig.remat
        for j, (i, r) in enumerate(zip(self.interaction, dropout_keys(rng, len(self.interaction)))):
            if d_kv is None:
                d_k, d_v = self._layer_kv(params, i, d_states)
            else:
                d_k, d_v = (split_heads(d_kv[:, :, j, a], cfg.num_heads) for a in (0, 1))
            # (positional: nn.remat's static deterministic is argument 3)
            q = layer.apply({"params": params["bert"][f"layer_{i}"]}, q, q_bias, r is None, (d_k, d_v, d_bias),
                            rngs={} if r is None else {"dropout": r})
        return self._head_score(params, q[:, 0])

    def _joint_layers(self, params, hidden, q_mask, d_mask, rng=None):
        """Interaction layers over full [q; d] rows (configurations that update the documents)."""
        segments = jnp.concatenate([jnp.zeros_like(q_mask), jnp.ones_like(d_mask)], 1)
        mask = mice_masks(segments, jnp.concatenate([q_mask, d_mask], 1), variant=self.late_mask)
        return bert_apply(self.bert_config, params["bert"], None, mask, start_layer=self.config.fusion_layer,
                          end_layer=self.last_layer, hidden_states=hidden, rng=rng)

    def _head_score(self, params, pooled):
        return ScoreHead(dtype=self.bert_config.dtype).apply({"params": params["head"]}, pooled).astype(jnp.float32)

    def pair_scores(self, params, q_ids, q_mask, d_ids, d_mask, *, rng=None) -> jax.Array:
        """Training path: q [B, Lq], d [B, N, Ld] -> scores [B, N]; each query's early layers run
        once, its documents' once each, then the interaction over the B x N pairs."""
        b, n, ld = d_ids.shape
        r_q, r_d, r_i = dropout_keys(rng, 3)  # rng (training) turns the backbone's dropout on
        qs = self.query_states(params, q_ids, q_mask, rng=r_q)
        ds = self.doc_states(params, d_ids.reshape(b * n, ld), d_mask.reshape(b * n, ld), rng=r_d)
        scores = self.interact(params, jnp.repeat(qs, n, axis=0), jnp.repeat(q_mask, n, axis=0),
                               ds, d_mask.reshape(b * n, ld), rng=r_i)
        return scores.reshape(b, n)

    # ---- reference: the joint sequence under the masks ----------------------------------------
    def joint_scores(self, params, input_ids, attention_mask, token_type_ids, segment_ids,
                     position_ids=None) -> jax.Array:
        """End to end on joint rows [B, L] (segment 0 = [CLS] q [SEP], 1 = d [SEP]): layers
        1..l_f under the early mask, then the interaction layers under the late mask, document rows
        reset to their l_f states after each layer where the configuration freezes them.
        With configuration "cross-encoder" and the cross-encoder's packed rows this is the
        cross-encoder."""
        enc = BertEncoder(self.bert_config)
        variables = {"params": params["bert"]}
        early = mice_masks(segment_ids, attention_mask, variant=self.early_mask)
        late = mice_masks(segment_ids, attention_mask, variant=self.late_mask)
        hidden = enc.apply(variables, input_ids, early, token_type_ids, end_layer=self.config.fusion_layer,
                           position_ids=position_ids)
        is_doc = (segment_ids == 1)[..., None]
        for i in self.interaction:
            new = enc.apply(variables, None, late, start_layer=i, end_layer=i + 1, hidden_states=hidden)
            hidden = new if self.updates_docs else jnp.where(is_doc, hidden, new)
        return self._head_score(params, hidden[:, 0])

    def joint_rows(self, q_ids, q_mask, d_ids, d_mask) -> dict[str, np.ndarray]:
        """The fixed-layout joint rows of (query, document) pairs: [n, Lq], [n, Ld] -> [n, Lq + Ld]
        input_ids, attention_mask, token_type_ids, segment_ids, position_ids (what
        `joint_scores` takes)."""
        n = len(q_ids)
        positions, types = self.doc_layout_arrays()
        tile = lambda a: np.broadcast_to(a, (n, len(a)))  # noqa: E731
        return {"input_ids": np.concatenate([q_ids, d_ids], 1),
                "attention_mask": np.concatenate([q_mask, d_mask], 1),
                "token_type_ids": np.concatenate([np.zeros_like(q_ids), tile(types)], 1),
                "segment_ids": np.concatenate([np.zeros_like(q_ids), np.ones_like(d_ids)], 1),
                "position_ids": np.concatenate([tile(np.arange(q_ids.shape[1], dtype=np.int32)),
                                                tile(positions)], 1)}

    # ---- training -----------------------------------------------------------------------------
    def loss_fn(self, params, batch, rng=None):
        """Margin-MSE against the teacher over n-way tuples (column 0 the positive).

        batch: q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld]; teacher [B, N]; valid [B, N].
        Returns (loss, {"acc": positive above every negative, "margin": mean s_0 - max s_n}).
        """
        scores = self.pair_scores(params, batch["q_ids"], batch["q_mask"], batch["d_ids"], batch["d_mask"],
                                  rng=rng)
        valid = batch["valid"].astype(bool)
        loss = losses.margin_mse_nway(scores, batch["teacher"].astype(jnp.float32), mask=valid)
        best_neg = jnp.max(jnp.where(valid[:, 1:], scores[:, 1:], jnp.finfo(jnp.float32).min), 1)
        has_neg = jnp.any(valid[:, 1:], axis=1)
        acc = jnp.mean(jnp.where(has_neg, scores[:, 0] > best_neg, True).astype(jnp.float32))
        margin = jnp.mean(jnp.where(has_neg, scores[:, 0] - best_neg, 0.0))
        return loss, {"acc": acc, "margin": margin}


def _pad(rows: list[list[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return ids, mask
