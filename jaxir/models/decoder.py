"""A Transformer decoder layer (self-attention, cross-attention to a memory, FFN), BERT-style.

Post-LN like `jaxir.models.bert.TransformerLayer`, whose parameter names it shares for the parts
they have in common (`attention`, `attention_norm`, `intermediate`, `output`, `output_norm`), so
those can start from a pretrained encoder layer:

    x = LN(x + SelfAttn(x))            self-attention, non-causal, key padding from `bias`
    x = LN(x + CrossAttn(x, memory))   queries from x, keys/values from memory [B, M, H]
    x = LN(x + FFN(x))
I3's query reconstructor is one such layer whose memory is a single slot, the passage vector.
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir.models.bert import ACTIVATIONS, BertConfig, SelfAttention, hidden_dropout


class CrossAttention(nn.Module):
    """Multi-head attention of x [B, T, H] over memory [B, M, H] (every memory slot visible)."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jax.Array, memory: jax.Array, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        chex.assert_rank([x, memory], 3)
        b, t, h = x.shape
        nh, hd = cfg.num_heads, h // cfg.num_heads
        q = nn.Dense(h, dtype=cfg.dtype, name="query")(x).reshape(b, t, nh, hd).transpose(0, 2, 1, 3)
        kv = nn.Dense(2 * h, dtype=cfg.dtype, name="key_value")(memory)
        kv = kv.reshape(b, memory.shape[1], 2, nh, hd).transpose(2, 0, 3, 1, 4)  # [2, B, heads, M, d]
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, kv[0]) / jnp.sqrt(hd).astype(cfg.dtype)
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(cfg.dtype)
        probs = nn.Dropout(cfg.attention_dropout)(probs, deterministic=deterministic)
        ctx = jnp.einsum("bhqk,bhkd->bhqd", probs, kv[1]).transpose(0, 2, 1, 3).reshape(b, t, h)
        return nn.Dense(h, dtype=cfg.dtype, name="out")(ctx)


class DecoderLayer(nn.Module):
    """x [B, T, H], additive self-attention bias [B, 1, 1|T, T], memory [B, M, H] -> [B, T, H]."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, memory: jax.Array,
                 deterministic: bool = True) -> jax.Array:
        cfg = self.config
        ln = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.dtype, name=name)
        drop = lambda y: hidden_dropout(cfg, y, deterministic)  # noqa: E731
        x = ln("attention_norm")(x + drop(SelfAttention(cfg, name="attention")(x, bias, deterministic)))
        x = ln("cross_attention_norm")(
            x + drop(CrossAttention(cfg, name="cross_attention")(x, memory, deterministic)))
        y = nn.Dense(cfg.intermediate_size, dtype=cfg.dtype, name="intermediate")(x)
        y = nn.Dense(cfg.hidden_size, dtype=cfg.dtype, name="output")(ACTIVATIONS[cfg.hidden_act](y))
        return ln("output_norm")(x + drop(y))
