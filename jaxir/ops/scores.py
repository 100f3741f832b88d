"""Per-query score normalisation and teacher-ensemble aggregation for distillation.

Shapes: B queries, N candidates per query. mask [B, N] marks the real candidates (bool or 0/1);
masked entries come out as 0 and never influence a row's statistics. Nothing returns NaN: a row
with one distinct value, or with no valid candidate, normalises to zeros.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import chex
import jax.numpy as jnp

Normalization = Literal["minmax", "zscore", "none"]


def _valid(scores: chex.Array, mask: chex.Array | None) -> chex.Array:
    chex.assert_rank(scores, 2)
    if mask is None:
        return jnp.ones(scores.shape, bool)
    chex.assert_equal_shape([scores, mask])
    return mask.astype(bool)


def _row_range(scores: chex.Array, valid: chex.Array) -> tuple[chex.Array, chex.Array]:
    """Min and max of each row's valid entries, [B, 1] each; (0, 0) for an all-masked row."""
    info = jnp.finfo(scores.dtype)
    lo = jnp.min(jnp.where(valid, scores, info.max), axis=1, keepdims=True)
    hi = jnp.max(jnp.where(valid, scores, info.min), axis=1, keepdims=True)
    any_valid = jnp.any(valid, axis=1, keepdims=True)
    return jnp.where(any_valid, lo, 0.0), jnp.where(any_valid, hi, 0.0)


def minmax_normalize(scores: chex.Array, *, mask: chex.Array | None = None) -> chex.Array:
    """Per-row min-max scaling to [0, 1]: out[b, n] = (s[b, n] - min_b) / (max_b - min_b).

    min_b / max_b run over row b's valid candidates. scores: [B, N] -> [B, N].

    >>> import numpy as np
    >>> minmax_normalize(np.array([[1., 3., 2.], [7., 7., 7.]])).tolist()   # a flat row: zeros
    [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]
    >>> minmax_normalize(np.array([[1., 3., 9.]]), mask=np.array([[1, 1, 0]])).tolist()
    [[0.0, 1.0, 0.0]]
    """
    scores = jnp.asarray(scores)  # jax's dtype: a NumPy float64's bounds would overflow float32
    valid = _valid(scores, mask)
    lo, hi = _row_range(scores, valid)
    span = hi - lo
    ok = valid & (span > 0)
    # Sanitise before dividing so neither the value nor the gradient can become NaN.
    centred = jnp.where(ok, scores - lo, 0.0)
    return centred / jnp.where(span > 0, span, 1.0)


def zscore_normalize(scores: chex.Array, *, mask: chex.Array | None = None) -> chex.Array:
    """Per-row standardisation: out[b, n] = (s[b, n] - mean_b) / std_b (population std).

    Statistics run over row b's valid candidates. scores: [B, N] -> [B, N]. A row whose valid
    entries are all equal maps to zeros (detected exactly via max == min, not via a tiny std).
    """
    scores = jnp.asarray(scores)  # jax's dtype: a NumPy float64's bounds would overflow float32
    valid = _valid(scores, mask)
    lo, hi = _row_range(scores, valid)
    count = jnp.maximum(jnp.sum(valid, axis=1, keepdims=True), 1).astype(scores.dtype)
    mean = jnp.sum(jnp.where(valid, scores, 0.0), axis=1, keepdims=True) / count
    dev = jnp.where(valid, scores - mean, 0.0)
    var = jnp.sum(jnp.square(dev), axis=1, keepdims=True) / count
    spread = (hi > lo) & (var > 0)
    std = jnp.sqrt(jnp.where(spread, var, 1.0))
    return jnp.where(valid & spread, dev / std, 0.0)


def _normalizer(name: str):
    if name == "minmax":
        return minmax_normalize
    if name == "zscore":
        return zscore_normalize
    if name == "none":
        return lambda s, *, mask: s if mask is None else jnp.where(mask.astype(bool), s, 0.0)
    raise ValueError(f"normalize must be 'minmax', 'zscore' or 'none', got {name!r}")


def ensemble_teacher_scores(
    teachers: Sequence[chex.Array],
    *,
    weights: Sequence[float] | None = None,
    normalize: Normalization = "minmax",
    scale: float = 30.0,
    mask: chex.Array | None = None,
) -> chex.Array:
    """Heterogeneous-ensemble teacher: out = scale * sum_k a_k norm(T_k) / sum_k a_k.

    teachers: K arrays [B, N] (e.g. a dense and a sparse siamese model's scores over the same
    candidates); weights a_k (default equal); norm is per-row min-max to [0, 1] by default.
    Returns [B, N]; masked entries are 0.
    """
    if len(teachers) == 0:
        raise ValueError("ensemble_teacher_scores: need at least one teacher score array")
    chex.assert_rank(list(teachers), 2)
    chex.assert_equal_shape(list(teachers))
    if weights is None:
        weights = [1.0] * len(teachers)
    if len(weights) != len(teachers):
        raise ValueError(
            f"ensemble_teacher_scores: {len(weights)} weights for {len(teachers)} teachers"
        )
    if all(isinstance(w, (int, float)) for w in weights) and (
        min(weights) < 0 or sum(weights) <= 0
    ):
        raise ValueError(
            f"ensemble_teacher_scores: weights must be >= 0 with a positive sum, got {weights}"
        )
    a = jnp.asarray(weights, jnp.float32)
    norm = _normalizer(normalize)
    stacked = jnp.stack([norm(t, mask=mask) for t in teachers])  # [K, B, N]
    total = jnp.sum(a)
    return scale * jnp.tensordot(a, stacked, axes=1) / jnp.where(total != 0, total, 1.0)
