"""The learned-sparse head's MLM warm-up: BERT's masked-token objective through the tied head,
on corpus text, before ranking training (`SparseModel.mlm_loss_fn`)."""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

from jaxir.ops import losses


def mlm_warmup_loss(model, params, batch, rng):
    """MLM warm-up: CE of the tied head on ~mlm_probability of each row's real tokens.

    batch: input_ids, attention_mask [B, L] (with [CLS]/[SEP]). Chosen tokens are replaced by
    [MASK] (80 %), a random token (10 %) or kept (10 %). Only the first ceil(mlm_max_fraction
    * L) chosen positions of a row (by a random order) are scored, so logits are [B, M, V].
    Returns (loss, {"mlm_acc"}).
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]
    chex.assert_rank([ids, mask], 2)
    length = ids.shape[1]
    k_pick, k_order, k_kind, k_rand = jax.random.split(rng, 4)
    can = mask.astype(bool) & ~jnp.isin(ids, jnp.asarray(model.special_ids))
    chosen = can & (jax.random.uniform(k_pick, ids.shape) < model.config.mlm_probability)
    kind = jax.random.uniform(k_kind, ids.shape)
    random_ids = jax.random.randint(k_rand, ids.shape, 0, model.bert_config.vocab_size)
    corrupted = jnp.where(chosen & (kind < 0.8), model.tokenizer.mask_token_id,
                          jnp.where(chosen & (kind >= 0.9), random_ids, ids))
    hidden = model.hidden(params, corrupted, mask)
    m = max(1, math.ceil(model.config.mlm_max_fraction * length))
    order = jnp.where(chosen, jax.random.uniform(k_order, ids.shape), -1.0)
    _, pos = jax.lax.top_k(order, m)  # [B, M]: chosen positions first
    picked_hidden = jnp.take_along_axis(hidden, pos[..., None], axis=1)
    logits = model.logits(params, picked_hidden)
    targets = jnp.take_along_axis(ids, pos, axis=1)
    scored = jnp.take_along_axis(chosen, pos, axis=1)
    loss = losses.token_cross_entropy(logits, targets, scored)
    hit = (jnp.argmax(logits, -1) == targets) & scored
    return loss, {"mlm_acc": jnp.sum(hit) / jnp.maximum(jnp.sum(scored), 1)}
