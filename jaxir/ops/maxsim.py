"""Late-interaction (ColBERT) MaxSim scores.

    S(q, d) = sum_i q_mask_i * max_{j : d_mask_j} <Q_i, D_j>

Every function computes the token-similarity tensor with one einsum (accumulated in float32 even
for bf16 inputs) and then takes a masked max over document tokens. A document whose tokens are all
masked scores 0, never NaN or -inf, and passes zero gradient.
Masks may be None (= all tokens valid); they may be bool or 0/1 numbers.
"""
from __future__ import annotations

import chex
import jax.numpy as jnp

Array = chex.Array


def _as_mask(mask: Array | None, shape: tuple[int, ...]) -> Array:
    """Bool mask of `shape` (all True when `mask` is None)."""
    if mask is None:
        return jnp.ones(shape, dtype=bool)
    chex.assert_shape(mask, shape)
    return mask.astype(bool)


def masked_maxsim(sim: Array, q_mask: Array, d_mask: Array) -> Array:
    """Reduce token similarities to MaxSim scores.

    Args:
      sim: [..., Lq, Ld] token similarities <Q_i, D_j>.
      q_mask: bool, broadcastable to [..., Lq].
      d_mask: bool, broadcastable to [..., Ld].
    Returns:
      [...] float32 scores; 0 where a document has no valid token.
    """
    sim = sim.astype(jnp.float32)
    # A finite floor (not -inf) keeps the max and its gradient finite when everything is masked.
    floor = jnp.finfo(jnp.float32).min
    per_token = jnp.max(jnp.where(d_mask[..., None, :], sim, floor), axis=-1)  # [..., Lq]
    has_token = jnp.any(d_mask, axis=-1, keepdims=True)  # [..., 1]
    per_token = jnp.where(has_token & q_mask, per_token, 0.0)
    return jnp.sum(per_token, axis=-1)


def maxsim_pairwise(q: Array, q_mask: Array | None, d: Array, d_mask: Array | None) -> Array:
    """MaxSim of aligned (query, document) pairs.

    Args:
      q: [..., Lq, D] query token embeddings.
      q_mask: [..., Lq] or None.
      d: [..., Ld, D] document token embeddings (same leading dims as q).
      d_mask: [..., Ld] or None.
    Returns:
      [...] float32 scores.

    One query of two tokens against one document of three (each query token keeps its best
    document token):

    >>> import numpy as np
    >>> q = np.array([[[1., 0.], [0., 1.]]])
    >>> d = np.array([[[1., 0.], [.5, .5], [0., 2.]]])
    >>> maxsim_pairwise(q, None, d, None).tolist()                                # 1 + 2
    [3.0]
    >>> maxsim_pairwise(q, None, d, np.array([[True, True, False]])).tolist()     # 1 + 0.5
    [1.5]
    >>> maxsim_pairwise(q, None, d, np.zeros((1, 3), bool)).tolist()  # no valid token: 0
    [0.0]
    """
    chex.assert_equal_rank([q, d])
    if q.ndim < 2:
        raise ValueError(f"maxsim_pairwise needs [..., L, D] inputs, got q {q.shape}, d {d.shape}")
    chex.assert_equal_shape_prefix([q, d], q.ndim - 2)
    chex.assert_equal_shape_suffix([q, d], 1)
    q_m = _as_mask(q_mask, q.shape[:-1])
    d_m = _as_mask(d_mask, d.shape[:-1])
    sim = jnp.einsum("...qh,...kh->...qk", q, d, preferred_element_type=jnp.float32)
    return masked_maxsim(sim, q_m, d_m)


def maxsim_all_pairs(q: Array, q_mask: Array | None, d: Array, d_mask: Array | None) -> Array:
    """MaxSim of every query against every document of a batch (in-batch negatives).

    Args:
      q: [Bq, Lq, D]; q_mask: [Bq, Lq] or None.
      d: [Bd, Ld, D]; d_mask: [Bd, Ld] or None.
    Returns:
      [Bq, Bd] float32 scores, scores[a, b] = S(q_a, d_b).
    """
    chex.assert_rank([q, d], 3)
    chex.assert_equal_shape_suffix([q, d], 1)
    q_m = _as_mask(q_mask, q.shape[:-1])
    d_m = _as_mask(d_mask, d.shape[:-1])
    sim = jnp.einsum("aqh,bkh->abqk", q, d, preferred_element_type=jnp.float32)
    return masked_maxsim(sim, q_m[:, None, :], d_m[None, :, :])


def maxsim_nway(q: Array, q_mask: Array | None, d: Array, d_mask: Array | None) -> Array:
    """MaxSim of each query against its own N candidate documents (n-way tuples).

    Args:
      q: [B, Lq, D]; q_mask: [B, Lq] or None.
      d: [B, N, Ld, D]; d_mask: [B, N, Ld] or None.
    Returns:
      [B, N] float32 scores, scores[b, n] = S(q_b, d_{b,n}).
    """
    chex.assert_rank([q, d], [3, 4])
    chex.assert_equal_shape_prefix([q, d], 1)
    chex.assert_equal_shape_suffix([q, d], 1)
    q_m = _as_mask(q_mask, q.shape[:-1])
    d_m = _as_mask(d_mask, d.shape[:-1])
    sim = jnp.einsum("bqh,bnkh->bnqk", q, d, preferred_element_type=jnp.float32)
    return masked_maxsim(sim, q_m[:, None, :], d_m)
