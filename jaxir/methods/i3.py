"""I³ retriever: a dual encoder whose passage vector absorbs an implicit interaction with a
query reconstructed from the passage alone (DESIGN §3.2).

    query    q = pool(BERT_q([CLS] q [SEP]))                                  [H]
    passage  p = pool(BERT_p([CLS] d [SEP]))                                  [H]
             H_q = Decoder(Emb_p([CLS] [MASK]x(Lq-2) [SEP]), memory = [p])    [Lq, H]
             v_p = Interactor([p, mean(H_q)])[0]                              [H]
    score    s(q, d) = <q, v_p> / tau       (unit vectors when `normalize`)
    loss     alpha * CE over in-batch + hard negatives   (contrastive objective)
             or KL(softmax(teacher) || softmax(s)) over each query's candidates  (distill)
             + beta * CE(MLMHead(H_q), target query tokens), padding ignored
Everything on the passage side is query-independent: passage vectors are precomputed and search
is a dot product with the same query tower as the plain dual encoder. `implicit_interaction=False`
is that plain dual encoder (same backbone, loss without the reconstruction term): the baseline.

Set as the reference trains it (`Deriq-Qian-Dong/III-Retriever`, `src/train_dual_encoder.py`):
- loss = alpha * CE + beta_e * rec with alpha = 1 and beta_e = 1/10^(e+1) in pass e = 0, 1, ...
  over the train queries (the reference's `beta = 1/10**epoch`, epochs counted from 1):
  `reconstruction_weight` is beta in the first pass, `reconstruction_decay` its factor per pass.
- Reconstruction targets are bare query tokens (no [CLS]/[SEP]; padding ignored), position i of
  the reconstructor predicting token i, for every passage of the tuple that has a target: the
  positive's is the training query, and with generated pseudo-queries each passage has its own.
- The new modules learn at a multiple of the encoders' rate (the reference: 1e-3 against 2e-5;
  `jaxir.recipes.i3` sets the multiplier of NEW_MODULES).

Choices the card leaves open, written down:
- pooling "mean" by default: all-MiniLM-L6-v2 was trained mean-pooled (its [CLS] state is not a
  sentence vector); "cls" is the paper's choice for BERT-style backbones. The memory slot is the
  pooled passage vector.
- No pre-trained decoder checkpoint exists here to warm-start the new modules (the reference
  loads one). `interactor_init="identity"` (default) starts the interactor with zero residual
  branches (attention and FFN output projections) and unit LayerNorms, so the untrained passage
  vector is the plain encoder's standardised (cosine >= 0.999 to it on MiniLM; tested) and the
  interaction is learnt from there; its other weights and the reconstructor's self-attention and
  FFN start as copies of the passage encoder's last layer. "last-layer" is the earlier start (a
  full copy of the last layer), which damages the passage space (kept to measure that).
- The cross-attention and the MLM head's transform start fresh; the MLM decoder is tied to the
  passage word embeddings (the reference's head is untied and pre-trained).
- With a single memory slot the cross-attention's softmax is 1 for every position, so it is
  exactly W_o (W_v p + b_v) + b_o added to each [MASK] state: its query/key projections never
  get a gradient (tested). Kept as the card's decoder layer; they cost no compute worth naming.

params = {"query": BERT, "passage": BERT (absent when tied), "reconstructor": DecoderLayer,
          "interactor": TransformerLayer, "mlm": MLMHead}   (the last three only with interaction)
"""
from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.methods.encoding import encode_pooled
from jaxir.methods.i3_config import I3Config
from jaxir.models.bert import (BertEncoder, TransformerLayer, attention_bias, bert_apply, dropout_keys,
                               dropout_rngs, init_params)
from jaxir.models.decoder import DecoderLayer
from jaxir.models.heads import MLMHead, l2_normalize, mean_pool
from jaxir.models.hf import load_bert, params_fingerprint
from jaxir.ops import losses
from jaxir.text import load_tokenizer

METHOD = "i3"
# The parameter groups that are new on top of the backbone (the reference's "head" modules).
NEW_MODULES = ("reconstructor", "interactor", "mlm")


class I3Model:
    """Static parts (configs, tokenizer, pretrained backbone) + pure functions of params."""

    def __init__(self, config: I3Config = I3Config(), *, bert_config=None, bert_params=None,
                 tokenizer=None):
        if bert_config is None:
            bert_config, bert_params = load_bert(config.model)
        self.config, self._pretrained = config, bert_params
        self.bert_config = bert_config.with_dropout(config.dropout)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        tok = self.tokenizer
        # [CLS] [MASK] x (Lq - 2) [SEP]: the reconstructor's fixed input.
        self.reconstructor_ids = np.asarray(
            [[tok.cls_token_id] + [tok.mask_token_id] * (config.query_maxlen - 2) + [tok.sep_token_id]],
            np.int32)
        self._query_fn = jax.jit(lambda p, i, m, t: self.encode_queries(p, i, m, t))
        self._passage_fn = jax.jit(lambda p, i, m, t: self.encode_passages(p, i, m, t)[0])

    # ---- params ------------------------------------------------------------------------------
    def init(self, rng: jax.Array, batch=None) -> dict:
        """Pretrained towers (random if none given) + the reconstructor, interactor and MLM head."""
        del batch
        cfg, bc = self.config, self.bert_config
        r_bert, r_dec, r_mlm = jax.random.split(rng, 3)
        bert = self._pretrained if self._pretrained is not None else init_params(bc, r_bert)
        params = {"query": bert} if cfg.tie else {"query": bert, "passage": bert}
        if not cfg.implicit_interaction:
            return params
        h = jnp.zeros((1, cfg.query_maxlen, bc.hidden_size), bc.dtype)
        bias = jnp.zeros((1, 1, 1, cfg.query_maxlen), jnp.float32)
        decoder = DecoderLayer(bc).init(r_dec, h, bias, h[:, :1])["params"]
        last = bert[f"layer_{bc.num_layers - 1}"]
        decoder = {**decoder, **{k: last[k] for k in last}}  # shared parts start pretrained
        mlm = MLMHead(bc.vocab_size, layer_norm_eps=bc.layer_norm_eps).init(
            r_mlm, h[:, :1], jnp.zeros((bc.vocab_size, bc.hidden_size), bc.dtype))["params"]
        interactor = identity_layer(last) if cfg.interactor_init == "identity" else last
        return {**params, "reconstructor": decoder, "interactor": interactor, "mlm": mlm}

    def fingerprint(self, params) -> str:
        return params_fingerprint(params)

    def _passage_bert(self, params):
        return params["query"] if self.config.tie else params["passage"]

    # ---- pure encoders -----------------------------------------------------------------------
    def _pooled(self, bert_params, ids, mask, token_types, rng=None):
        hidden = bert_apply(self.bert_config, bert_params, ids, mask, token_types, rng=rng)
        return mean_pool(hidden, mask) if self.config.pooling == "mean" else hidden[:, 0]

    def _finish(self, v: jax.Array) -> jax.Array:
        return l2_normalize(v) if self.config.normalize else v

    def encode_queries(self, params, ids, mask, token_types=None, *, rng=None) -> jax.Array:
        """ids, mask [B, Lq] -> query vectors [B, H] (`rng`: training dropout)."""
        chex.assert_rank([ids, mask], 2)
        return self._finish(self._pooled(params["query"], ids, mask, token_types, rng))

    def encode_passages(self, params, ids, mask, token_types=None, *, rng=None):
        """ids, mask [P, Ld] -> (passage vectors [P, H], reconstructor states H_q [P, Lq, H] or None)
        (`rng`: training dropout in the tower, reconstructor and interactor)."""
        chex.assert_rank([ids, mask], 2)
        bert = self._passage_bert(params)
        r_enc, r_rec, r_int = dropout_keys(rng, 3)
        p = self._pooled(bert, ids, mask, token_types, r_enc)
        if not self.config.implicit_interaction:
            return self._finish(p), None
        bc, n = self.bert_config, ids.shape[0]
        rec_ids = jnp.asarray(self.reconstructor_ids)
        emb = BertEncoder(bc).apply({"params": bert}, rec_ids, jnp.zeros_like(rec_ids),
                                    method=lambda m, i, t: m.embeddings(i, t))
        emb = jnp.broadcast_to(emb, (n, *emb.shape[1:]))
        no_pad = attention_bias(jnp.ones((n, emb.shape[1]), jnp.int32), jnp.float32)
        h_q = DecoderLayer(bc).apply({"params": params["reconstructor"]}, emb, no_pad, p[:, None],
                                     **dropout_rngs(r_rec))
        pair = jnp.stack([p, h_q.mean(axis=1)], axis=1)  # [P, 2, H]
        out = TransformerLayer(bc).apply({"params": params["interactor"]}, pair,
                                         attention_bias(jnp.ones((n, 2), jnp.int32), jnp.float32),
                                         **dropout_rngs(r_int))
        return self._finish(out[:, 0]), h_q

    def reconstruction_logits(self, params, h_q: jax.Array) -> jax.Array:
        """H_q [P, Lq, H] -> MLM logits [P, Lq, V] (decoder tied to the passage word embeddings)."""
        words = self._passage_bert(params)["embeddings"]["word"]["embedding"]
        return MLMHead(self.bert_config.vocab_size, layer_norm_eps=self.bert_config.layer_norm_eps).apply(
            {"params": params["mlm"]}, h_q, words)

    # ---- training ------------------------------------------------------------------------------
    def reconstruction_weight_at(self, update: jax.Array | int, steps_per_epoch: int | None) -> jax.Array:
        """beta at optimizer update `update`: reconstruction_weight * decay^(pass over the train
        queries); constant when the pass length is unknown (None)."""
        cfg = self.config
        if steps_per_epoch is None or cfg.reconstruction_decay == 1.0:
            return jnp.asarray(cfg.reconstruction_weight, jnp.float32)
        epoch = (jnp.asarray(update) // steps_per_epoch).astype(jnp.float32)
        return cfg.reconstruction_weight * jnp.asarray(cfg.reconstruction_decay, jnp.float32) ** epoch

    def loss_fn(self, params, batch, rng=None, *, step=None, steps_per_epoch: int | None = None):
        """batch: q_ids, q_mask [B, Lq]; d_ids, d_mask [B, N, Ld] (column 0 the positive);
        rec_ids, rec_mask [B, N, Lq] each passage's reconstruction target (bare query tokens, no
        [CLS]/[SEP], mask 0 on padding and on passages without a target; default: the positive's
        is the query's own tokens); teacher [B, N] for the distill objective; valid [B, N]
        optional (False: a padded candidate slot). `rng` turns dropout on (training); `step`
        (the optimizer update) and `steps_per_epoch` set beta's per-pass decay.
        Returns (loss, {"rank", "rec", "beta", "acc"}); rank is alpha-weighted, rec is not."""
        cfg = self.config
        b, n, ld = batch["d_ids"].shape
        r_q, r_p = dropout_keys(rng, 2)
        q = self.encode_queries(params, batch["q_ids"], batch["q_mask"], rng=r_q)
        p, h_q = self.encode_passages(params, batch["d_ids"].reshape(b * n, ld),
                                      batch["d_mask"].reshape(b * n, ld), rng=r_p)
        scores = (q @ p.T).astype(jnp.float32) / cfg.temperature  # [B, B * N]
        own = jnp.take_along_axis(scores, jnp.arange(b)[:, None] * n + jnp.arange(n)[None, :], axis=1)
        valid = batch.get("valid")  # padded candidate slots (fewer mined negatives) leave every softmax
        valid = jnp.ones((b, n), bool) if valid is None else valid.astype(bool)
        if cfg.objective == "distill":
            rank = losses.kl_distillation(own, batch["teacher"].astype(jnp.float32),
                                          temperature=cfg.distill_temperature, mask=valid)
        elif cfg.in_batch_negatives:
            rank = cfg.contrastive_weight * losses.inbatch_cross_entropy(
                scores, group_size=n, exclude_own_negatives=False,
                mask=jnp.broadcast_to(valid.reshape(1, -1), (b, b * n)))
        else:
            rank = cfg.contrastive_weight * losses.localized_contrastive(own, mask=valid)
        rec = jnp.zeros((), jnp.float32)
        beta = self.reconstruction_weight_at(0 if step is None else step, steps_per_epoch)
        if h_q is not None and cfg.reconstruction_weight:
            targets, mask = batch.get("rec_ids"), batch.get("rec_mask")
            if targets is None:  # the positive's target is the query; negatives have none
                targets, mask = query_targets(self.tokenizer, batch["q_ids"], batch["q_mask"], n)
            chex.assert_shape([targets, mask], (b, n, cfg.query_maxlen))
            mask = mask * valid[..., None]
            h = h_q.reshape(b, n, *h_q.shape[1:])
            if batch.get("rec_ids") is None:  # only column 0 has labels: skip the others' logits
                h, targets, mask = h[:, :1], targets[:, :1], mask[:, :1]
            lq = cfg.query_maxlen
            logits = self.reconstruction_logits(params, h.reshape(-1, lq, h.shape[-1]))
            rec = losses.token_cross_entropy(logits, targets.reshape(-1, lq), mask.reshape(-1, lq))
        acc = jnp.mean((jnp.argmax(jnp.where(valid, own, -jnp.inf), axis=1) == 0).astype(jnp.float32))
        return rank + beta * rec, {"rank": rank, "rec": rec, "beta": beta, "acc": acc}

    # ---- text -> vectors ------------------------------------------------------------------------
    def encode_query_texts(self, params, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Query texts -> float32 [N, H]."""
        return encode_pooled(self._query_fn, params, self.tokenizer, texts, max_length=self.config.query_maxlen,
                             batch_size=self.config.batch_size, desc="encode queries", progress=progress,
                             what="query")

    def encode_passage_texts(self, params, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Passage texts -> float32 [N, H] (query-independent: this is what the index stores)."""
        return encode_pooled(self._passage_fn, params, self.tokenizer, texts, max_length=self.config.doc_maxlen,
                             batch_size=self.config.batch_size, desc="encode passages", progress=progress,
                             what="document")


def identity_layer(layer: dict) -> dict:
    """A post-LN Transformer layer that maps x to standardise(x): a copy of `layer` with its two
    residual branches' output projections zeroed and unit LayerNorms. Attention and FFN get
    gradients through the zeroed projections from the first update on."""
    zero = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)  # noqa: E731
    unit = lambda ln: {"scale": jnp.ones_like(ln["scale"]), "bias": jnp.zeros_like(ln["bias"])}  # noqa: E731
    return {**layer, "attention": {**layer["attention"], "out": zero(layer["attention"]["out"])},
            "output": zero(layer["output"]), "attention_norm": unit(layer["attention_norm"]),
            "output_norm": unit(layer["output_norm"])}


def query_targets(tokenizer, q_ids: jax.Array, q_mask: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Reconstruction targets [B, n, Lq] from `[CLS] q [SEP]` rows: the bare query tokens shifted
    to position 0 for column 0 (the positive), no target (mask 0) for the other n - 1 columns."""
    special = jnp.asarray([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    bare = q_mask.astype(bool) & ~jnp.isin(q_ids, special)
    # [CLS] is position 0 and the query is contiguous: shift left by one.
    ids = jnp.concatenate([q_ids[:, 1:], jnp.zeros_like(q_ids[:, :1])], axis=1)
    mask = jnp.concatenate([bare[:, 1:], jnp.zeros_like(bare[:, :1])], axis=1).astype(jnp.int32)
    first = jnp.arange(n)[None, :, None] == 0
    targets = jnp.where(first, ids[:, None], 0)
    return targets.astype(jnp.int32), jnp.where(first, mask[:, None], 0)
