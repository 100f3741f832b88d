"""Small heads on top of encoder states: pooling, projection, score head, MLM head."""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """[B, L, H], [B, L] -> [B, H]: average over unmasked tokens (0 when none)."""
    chex.assert_rank(hidden, 3)
    chex.assert_equal_shape_prefix([hidden, mask], 2)
    m = mask.astype(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


def cls_pool(hidden: jax.Array) -> jax.Array:
    """[B, L, H] -> [B, H]: the first ([CLS]) position."""
    return hidden[:, 0]


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||, eps): zero vectors stay zero instead of becoming NaN."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=axis, keepdims=True))
    return (x / jnp.maximum(norm, eps)).astype(x.dtype)


class Projection(nn.Module):
    """Linear(hidden -> dim), no bias by default (ColBERT's token projection)."""

    dim: int
    use_bias: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.dim, use_bias=self.use_bias, dtype=self.dtype, name="dense")(x)


class ScoreHead(nn.Module):
    """Linear(hidden -> 1) on a pooled vector: a cross-encoder's relevance score."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, pooled):
        return nn.Dense(1, dtype=self.dtype, name="dense")(pooled)[..., 0]


class MLMHead(nn.Module):
    """BERT MLM head: dense + gelu + LayerNorm, then a decoder tied to the word embeddings.

    `word_embeddings` [V, H] is passed in (tied, not a parameter of this head); the head owns
    the transform and the per-vocabulary bias.
    """

    vocab_size: int
    layer_norm_eps: float = 1e-12
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, word_embeddings, vocab_ids=None):
        """hidden [..., H] -> logits [..., V], or [..., S] for the S entries of `vocab_ids`."""
        h = nn.Dense(hidden.shape[-1], dtype=self.dtype, name="transform")(hidden)
        h = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="norm")(
            jax.nn.gelu(h, approximate=False))
        bias = self.param("bias", nn.initializers.zeros, (self.vocab_size,))
        if vocab_ids is not None:  # only these columns of the decoder: cost scales with S
            word_embeddings, bias = word_embeddings[vocab_ids], bias[vocab_ids]
        return h @ word_embeddings.T.astype(self.dtype) + bias
