"""Flax (linen) BERT encoder.

Parity target: transformers' PyTorch `BertModel` (last hidden states within 1e-4 in fp32).
Differences that are only about speed: Q, K and V are one fused [H, 3H] projection, and attention
runs in the [B, heads, T, d] layout (about 3x faster on CPU than a [B, T, heads, d] einsum).

The encoder takes a (B, L) padding mask or a full (B, L, L) attention mask, and can run a
sub-range of layers (`start_layer`/`end_layer`, resuming from given `hidden_states`), which
MICE (split stack) and I3 need. A layer can also attend to extra precomputed keys/values besides
its own rows (`TransformerLayer(..., memory=...)`, with `layer_key_values` giving a layer's keys
and values of other rows), updating only its own rows: MICE's interaction layers.

Dropout (hidden and attention-probability rates, from the HF config as BERT fine-tuning uses
them) runs only when the caller passes a training rng (`bert_apply(..., rng=key)`, i.e. flax's
`deterministic=False` with a "dropout" rng): encoding and evaluation are exactly dropout-free.

Activation rematerialisation (`jaxir.remat`): inside `with remat_layers("nothing"):` every
encoder layer traced (any model, any method) is wrapped in `nn.remat` with that policy, so the
backward pass recomputes what the policy does not keep instead of holding every layer's
activations. The train step enters it when `FitConfig.remat` is on.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir.remat import REMAT_POLICIES, active_policy


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    # Dropout on the embeddings, attention output and FFN output (HF `hidden_dropout_prob`).
    hidden_dropout: float = 0.0
    # Dropout on the attention probabilities (HF `attention_probs_dropout_prob`).
    attention_dropout: float = 0.0
    # Compute dtype (fp32 reference; bf16 on accelerators). Params stay fp32 (master weights).
    dtype: Any = jnp.float32

    @classmethod
    def from_hf(cls, cfg: dict, **overrides) -> "BertConfig":
        if cfg.get("model_type", "bert") != "bert":
            raise ValueError(f"only BERT configs are supported, got model_type={cfg.get('model_type')}")
        fields = dict(
            vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
            num_layers=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
            intermediate_size=cfg["intermediate_size"],
            max_position=cfg["max_position_embeddings"],
            type_vocab_size=cfg.get("type_vocab_size", 2),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
            hidden_act=cfg.get("hidden_act", "gelu"), pad_token_id=cfg.get("pad_token_id", 0),
            hidden_dropout=cfg.get("hidden_dropout_prob", 0.1),
            attention_dropout=cfg.get("attention_probs_dropout_prob", 0.1),
        )
        return cls(**{**fields, **overrides})

    def with_dropout(self, rate: float | None) -> "BertConfig":
        """Both dropout rates set to `rate` (None: keep the backbone config's own)."""
        if rate is None:
            return self
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {rate}")
        return dataclasses.replace(self, hidden_dropout=rate, attention_dropout=rate)

    @classmethod
    def tiny(cls, **overrides) -> "BertConfig":
        """A 2-layer, 32-wide BERT for fast tests (same vocab as MiniLM)."""
        base = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        """The architecture (what a checkpoint must match); dropout rates are training settings."""
        d = dataclasses.asdict(self)
        del d["hidden_dropout"], d["attention_dropout"]
        d["dtype"] = jnp.dtype(self.dtype).name
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        """The inverse of `to_dict` (a model folder's recorded backbone)."""
        return cls(**{**d, "dtype": jnp.dtype(d.get("dtype", "float32"))})


ACTIVATIONS = {  # the hidden_act values jaxir runs (checkpoint import refuses others)
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def attention_bias(mask: jax.Array, dtype) -> jax.Array:
    """(B, L) key-padding or (B, L, L) query-key mask -> additive bias [B, 1, L|1, L]."""
    if mask.ndim == 2:
        mask = mask[:, None, None, :]
    elif mask.ndim == 3:
        mask = mask[:, None, :, :]
    else:
        raise ValueError(f"attention mask must be (B, L) or (B, L, L), got shape {mask.shape}")
    return jnp.where(mask.astype(bool), 0.0, jnp.finfo(dtype).min).astype(dtype)


def split_heads(x: jax.Array, num_heads: int) -> jax.Array:
    """[B, T, H] -> [B, heads, T, d] (attention's layout)."""
    b, t, h = x.shape
    return x.reshape(b, t, num_heads, h // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: jax.Array) -> jax.Array:
    """[B, heads, T, d] -> [B, T, H] (the inverse of split_heads)."""
    b, nh, t, hd = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, nh * hd)


class SelfAttention(nn.Module):
    """Multi-head self-attention of rows x [B, T, H] under an additive `bias` [B, 1, T|1, T].

    `memory` = (keys, values, bias): extra keys/values [B, heads, Lm, d] (e.g. another segment's,
    from `key_values`, precomputed) that the rows attend to besides themselves, under their own
    additive bias [B, 1, T|1, Lm]; only the rows x are updated. Without it, plain self-attention.
    """

    config: BertConfig

    def setup(self):
        cfg = self.config
        self.qkv = nn.Dense(3 * cfg.hidden_size, dtype=cfg.dtype)  # fused Q | K | V
        self.out = nn.Dense(cfg.hidden_size, dtype=cfg.dtype)

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, deterministic: bool = True,
                 memory: tuple[jax.Array, jax.Array, jax.Array] | None = None) -> jax.Array:
        cfg = self.config
        b, t, h = x.shape
        nh, hd = cfg.num_heads, h // cfg.num_heads
        qkv = self.qkv(x).reshape(b, t, 3, nh, hd).transpose(2, 0, 3, 1, 4)  # [3, B, heads, T, d]
        q, k, v = qkv[0], qkv[1], qkv[2]
        if memory is not None:
            m_k, m_v, m_bias = memory
            k = jnp.concatenate([k, m_k.astype(k.dtype)], axis=2)
            v = jnp.concatenate([v, m_v.astype(v.dtype)], axis=2)
            lead = jnp.broadcast_shapes(bias.shape[:-1], m_bias.shape[:-1])
            bias = jnp.concatenate([jnp.broadcast_to(bias, (*lead, bias.shape[-1])),
                                    jnp.broadcast_to(m_bias, (*lead, m_bias.shape[-1]))], axis=-1)
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / jnp.sqrt(hd).astype(cfg.dtype)
        probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1).astype(cfg.dtype)
        probs = nn.Dropout(cfg.attention_dropout)(probs, deterministic=deterministic)
        ctx = jnp.einsum("bhqk,bhkd->bhqd", probs, v).transpose(0, 2, 1, 3).reshape(b, t, h)
        return self.out(ctx)

    def key_values(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values [B, heads, T, d] of rows x [B, T, H] (this attention's own K and V
        projections, the K | V columns of `qkv`; Q is not computed): what `memory` takes."""
        cfg = self.config
        h, p = cfg.hidden_size, self.qkv.variables["params"]
        kv_params = {"kernel": p["kernel"][:, h:], "bias": p["bias"][h:]}
        kv = nn.Dense(2 * h, dtype=cfg.dtype, parent=None).apply({"params": kv_params}, x)
        kv = split_heads(kv, 2 * cfg.num_heads)  # [B, 2 heads, T, d]: the K heads, then the V heads
        return kv[:, : cfg.num_heads], kv[:, cfg.num_heads:]


def hidden_dropout(cfg: BertConfig, x: jax.Array, deterministic: bool) -> jax.Array:
    """BERT's hidden dropout (embeddings, each residual branch); identity when deterministic."""
    return nn.Dropout(cfg.hidden_dropout)(x, deterministic=deterministic)


class TransformerLayer(nn.Module):
    """One post-LN BERT layer over rows x [B, T, H]; `memory` (see SelfAttention): extra keys and
    values the rows also attend to, only the rows x being updated."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, deterministic: bool = True,
                 memory: tuple[jax.Array, jax.Array, jax.Array] | None = None) -> jax.Array:
        cfg = self.config
        ln = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.dtype, name=name)
        a = SelfAttention(cfg, name="attention")(x, bias, deterministic, memory)
        x = ln("attention_norm")(x + hidden_dropout(cfg, a, deterministic))
        y = nn.Dense(cfg.intermediate_size, dtype=cfg.dtype, name="intermediate")(x)
        y = nn.Dense(cfg.hidden_size, dtype=cfg.dtype, name="output")(ACTIVATIONS[cfg.hidden_act](y))
        return ln("output_norm")(x + hidden_dropout(cfg, y, deterministic))


def layer_module() -> type[nn.Module]:
    """TransformerLayer, or inside `jaxir.remat.remat_layers(policy)` (a train step with
    FitConfig.remat being traced) its `nn.remat` with that policy."""
    policy = active_policy()
    if policy is None:
        return TransformerLayer
    return nn.remat(TransformerLayer, policy=REMAT_POLICIES[policy], static_argnums=(3,))  # 3: deterministic


def layer_key_values(config: BertConfig, layer_params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A TransformerLayer's (params `layer_params`) keys and values [B, heads, T, d] of rows x
    [B, T, H]: its `memory` for another segment's rows to attend to."""
    return SelfAttention(config).apply({"params": layer_params["attention"]}, x, method=SelfAttention.key_values)


class Embeddings(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array,
                 position_ids: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        init = nn.initializers.normal(0.02)
        word = nn.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=init, name="word")
        pos = nn.Embed(cfg.max_position, cfg.hidden_size, embedding_init=init, name="position")
        typ = nn.Embed(cfg.type_vocab_size, cfg.hidden_size, embedding_init=init, name="token_type")
        positions = jnp.arange(input_ids.shape[1])[None, :] if position_ids is None else position_ids
        x = word(input_ids) + pos(positions) + typ(token_type_ids)
        x = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.dtype, name="norm")(x)
        return hidden_dropout(cfg, x, deterministic)


class BertEncoder(nn.Module):
    """BERT encoder: ids [B, L] -> hidden states [B, L, H].

    Args of __call__:
      input_ids: [B, L] int token ids (ignored when `hidden_states` is given).
      attention_mask: [B, L] padding mask or [B, L, L] query-key mask (1 = may attend).
      token_type_ids: [B, L] segment ids (default zeros).
      start_layer, end_layer: run layers [start_layer, end_layer) only.
      hidden_states: [B, L, H] states to resume from (required when start_layer > 0).
      position_ids: [B, L] (or [1, L]) positions (default 0..L-1; MICE places a document
        segment encoded alone at the offset it has in the joint sequence).
      deterministic: False applies the config's dropout (needs a "dropout" rng; see bert_apply).
    """

    config: BertConfig

    def setup(self):
        self.embeddings = Embeddings(self.config)
        layer = layer_module()  # rematerialised while a train step with FitConfig.remat is traced
        self.layers = [layer(self.config, name=f"layer_{i}") for i in range(self.config.num_layers)]

    def __call__(self, input_ids, attention_mask, token_type_ids=None, *, start_layer: int = 0,
                 end_layer: int | None = None, hidden_states=None, position_ids=None,
                 deterministic: bool = True):
        cfg = self.config
        end_layer = cfg.num_layers if end_layer is None else end_layer
        if not 0 <= start_layer <= end_layer <= cfg.num_layers:
            raise ValueError(f"bad layer range [{start_layer}, {end_layer}) for {cfg.num_layers} layers")
        if hidden_states is None:
            if start_layer > 0:
                raise ValueError("start_layer > 0 needs the hidden_states to resume from")
            chex.assert_rank(input_ids, 2)
            if input_ids.shape[1] > cfg.max_position:
                raise ValueError(f"sequence length {input_ids.shape[1]} > max_position {cfg.max_position}")
            if token_type_ids is None:
                token_type_ids = jnp.zeros_like(input_ids)
            hidden_states = self.embeddings(input_ids, token_type_ids, position_ids, deterministic)
        chex.assert_rank(hidden_states, 3)
        bias = attention_bias(attention_mask, jnp.float32)
        for layer in self.layers[start_layer:end_layer]:
            hidden_states = layer(hidden_states, bias, deterministic)
        return hidden_states

    def word_embeddings(self):
        """The [V, H] input embedding table (tied MLM decoders use it)."""
        return self.embeddings.variables["params"]["word"]["embedding"]


def init_params(config: BertConfig, rng: jax.Array, seq_len: int = 8) -> dict:
    """Randomly initialised params pytree (BERT's N(0, 0.02) embeddings, flax defaults elsewhere)."""
    ids = jnp.zeros((1, seq_len), jnp.int32)
    return BertEncoder(config).init(rng, ids, jnp.ones((1, seq_len), jnp.int32))["params"]


def dropout_rngs(rng: jax.Array | None) -> dict:
    """apply() keywords for a training rng: dropout on with that rng, or off (None)."""
    return {"deterministic": True} if rng is None else {"deterministic": False, "rngs": {"dropout": rng}}


def dropout_keys(rng: jax.Array | None, n: int) -> list:
    """n independent dropout rngs of a training rng (n Nones when evaluating)."""
    return [None] * n if rng is None else list(jax.random.split(rng, n))


def bert_apply(config: BertConfig, params: dict, input_ids, attention_mask, token_type_ids=None, *,
               rng: jax.Array | None = None, **kwargs) -> jax.Array:
    """BertEncoder(config) on `params`; `rng` (training only) turns the config's dropout on."""
    return BertEncoder(config).apply({"params": params}, input_ids, attention_mask, token_type_ids,
                                     **dropout_rngs(rng), **kwargs)
