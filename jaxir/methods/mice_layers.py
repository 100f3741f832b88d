"""MICE's interaction layer as plain functions of a BERT layer's params: query rows attend to the
query and to frozen (precomputed) document keys/values; only the query rows are updated."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir.models.bert import ACTIVATIONS, BertConfig, dropout, dropout_keys


def _dense(p: dict, x: jax.Array) -> jax.Array:
    return x @ p["kernel"].astype(x.dtype) + p["bias"].astype(x.dtype)


def _layer_norm(p: dict, x: jax.Array, eps: float) -> jax.Array:
    return nn.LayerNorm(epsilon=eps, dtype=x.dtype).apply({"params": p}, x)


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """[n, T, H] -> [n, heads, T, d]."""
    n, t, h = x.shape
    return x.reshape(n, t, num_heads, h // num_heads).transpose(0, 2, 1, 3)


def kv_projection(layer: dict, doc_states: jax.Array) -> jax.Array:
    """One layer's keys and values of frozen document states: [n, Ld, H] -> [n, Ld, 2, H]."""
    h = doc_states.shape[-1]
    qkv = layer["attention"]["qkv"]
    kv = doc_states @ qkv["kernel"][:, h:].astype(doc_states.dtype) + qkv["bias"][h:].astype(doc_states.dtype)
    return kv.reshape(*doc_states.shape[:-1], 2, h)


def interaction_layer(layer: dict, q: jax.Array, q_keys: jax.Array, d_k: jax.Array, d_v: jax.Array,
                      d_keys: jax.Array, cfg: BertConfig, rng: jax.Array | None = None) -> jax.Array:
    """One MICE interaction layer: query rows [n, Lq, H] attend to the query (keys where
    q_keys [n, Lq]) and to a frozen document (d_k, d_v [n, heads, Ld, d], keys where d_keys
    [n, Ld]); only the query rows are updated (attention, residual, LayerNorm, FFN). `rng`
    (training) applies BERT's dropout where the encoder layer does."""
    r_att, r_a, r_f = dropout_keys(rng, 3)
    n, lq, h = q.shape
    nh, hd = cfg.num_heads, h // cfg.num_heads
    qkv = _dense(layer["attention"]["qkv"], q).reshape(n, lq, 3, nh, hd).transpose(2, 0, 3, 1, 4)
    keys = jnp.concatenate([qkv[1], d_k.astype(q.dtype)], axis=2)
    values = jnp.concatenate([qkv[2], d_v.astype(q.dtype)], axis=2)
    allowed = jnp.concatenate([q_keys, d_keys], axis=1).astype(bool)
    bias = jnp.where(allowed, 0.0, jnp.finfo(jnp.float32).min)[:, None, None, :]
    scores = jnp.einsum("bhqd,bhkd->bhqk", qkv[0], keys) / jnp.sqrt(hd).astype(q.dtype)
    probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1).astype(q.dtype)
    probs = dropout(probs, cfg.attention_dropout, r_att)
    ctx = jnp.einsum("bhqk,bhkd->bhqd", probs, values).transpose(0, 2, 1, 3).reshape(n, lq, h)
    a = dropout(_dense(layer["attention"]["out"], ctx), cfg.hidden_dropout, r_a)
    x = _layer_norm(layer["attention_norm"], q + a, cfg.layer_norm_eps)
    y = _dense(layer["output"], ACTIVATIONS[cfg.hidden_act](_dense(layer["intermediate"], x)))
    return _layer_norm(layer["output_norm"], x + dropout(y, cfg.hidden_dropout, r_f), cfg.layer_norm_eps)
