"""Ranking and reconstruction losses: KL distillation, Margin-MSE, InfoNCE, in-batch CE, token CE.

Shapes: B queries, N candidates per query, L tokens, V vocabulary. Every loss is a scalar mean
over its valid items and is exactly 0 (with finite, zero gradients) when nothing is valid.
Teacher scores are targets: gradients are stopped on them.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _valid(scores: chex.Array, mask: chex.Array | None) -> chex.Array:
    if mask is None:
        return jnp.ones(scores.shape, bool)
    chex.assert_equal_shape([scores, mask])
    return mask.astype(bool)


def _masked_log_softmax(logits: chex.Array, valid: chex.Array) -> chex.Array:
    """log softmax over the valid entries of the last axis; masked entries get a huge negative.

    A finite fill (not -inf) keeps values and gradients finite even for all-masked rows; it is
    taken in the dtype jax computes in (a NumPy float64 input's float64 floor would be -inf).
    """
    logits = jnp.asarray(logits)
    fill = jnp.finfo(logits.dtype).min / 2
    return jax.nn.log_softmax(jnp.where(valid, logits, fill), axis=-1)


def _safe_mean(values: chex.Array, weights: chex.Array) -> chex.Array:
    """sum(values * weights) / sum(weights), 0 when every weight is 0."""
    weights = weights.astype(values.dtype)
    total = jnp.sum(weights)
    return jnp.sum(jnp.where(weights > 0, values, 0.0) * weights) / jnp.maximum(total, 1.0)


def kl_distillation(
    student: chex.Array,
    teacher: chex.Array,
    *,
    temperature: float = 1.0,
    mask: chex.Array | None = None,
) -> chex.Array:
    """KL(p_t || p_s) with p = softmax(scores / tau) over each row's valid candidates.

    loss = mean_b sum_n p_t[b, n] (log p_t[b, n] - log p_s[b, n]); the mean runs over rows with at
    least one valid candidate. No tau^2 factor. student, teacher: [B, N]; mask: [B, N].
    """
    chex.assert_rank([student, teacher], 2)
    chex.assert_equal_shape([student, teacher])
    valid = _valid(student, mask)
    teacher = jax.lax.stop_gradient(teacher)
    log_ps = _masked_log_softmax(student / temperature, valid)
    log_pt = _masked_log_softmax(teacher / temperature, valid)
    per_item = jnp.where(valid, jnp.exp(log_pt) * (log_pt - log_ps), 0.0)
    return _safe_mean(jnp.sum(per_item, axis=1), jnp.any(valid, axis=1))


def margin_mse(
    student_pos: chex.Array,
    student_neg: chex.Array,
    teacher_pos: chex.Array,
    teacher_neg: chex.Array,
) -> chex.Array:
    """Margin-MSE (Hofstaetter et al., 2020): mean ((s+ - s-) - (t+ - t-))^2.  All inputs [B].

    >>> import numpy as np
    >>> s_pos, s_neg = np.array([3., 2.]), np.array([1., 2.])   # student margins 2, 0
    >>> t_pos, t_neg = np.array([5., 4.]), np.array([2., 2.])   # teacher margins 3, 2
    >>> margin_mse(s_pos, s_neg, t_pos, t_neg).item()           # ((2 - 3)^2 + (0 - 2)^2) / 2
    2.5
    """
    chex.assert_rank(student_pos, 1)
    chex.assert_equal_shape([student_pos, student_neg, teacher_pos, teacher_neg])
    teacher_margin = jax.lax.stop_gradient(teacher_pos - teacher_neg)
    return jnp.mean(jnp.square((student_pos - student_neg) - teacher_margin))


def margin_mse_nway(
    student: chex.Array, teacher: chex.Array, *, mask: chex.Array | None = None
) -> chex.Array:
    """N-way Margin-MSE, column 0 the positive: mean_{b, j>=1} ((s_b0 - s_bj) - (t_b0 - t_bj))^2.

    student, teacher: [B, N]; mask: [B, N]. A pair counts when both column 0 and column j are
    valid; the mean runs over counted pairs.
    """
    chex.assert_rank([student, teacher], 2)
    chex.assert_equal_shape([student, teacher])
    valid = _valid(student, mask)
    teacher = jax.lax.stop_gradient(teacher)
    s_margin = student[:, :1] - student[:, 1:]
    t_margin = teacher[:, :1] - teacher[:, 1:]
    pairs = valid[:, :1] & valid[:, 1:]
    return _safe_mean(jnp.square(s_margin - t_margin), pairs)


def infonce(
    scores: chex.Array, labels: chex.Array, *, mask: chex.Array | None = None
) -> chex.Array:
    """Softmax cross-entropy: mean_b -log softmax(scores[b, valid])[labels[b]].

    scores: [B, N]; labels: [B] ints; mask: [B, N] (masked candidates leave the softmax). A row
    whose label is masked or out of range is skipped; the mean runs over the other rows.
    Divide scores by a temperature before calling if the method uses one.

    >>> import numpy as np
    >>> scores = np.array([[0., 0.], [2., 0.]])
    >>> round(infonce(scores, np.array([0, 0])).item(), 4)   # (ln 2 + ln(1 + e^-2)) / 2
    0.41
    >>> infonce(scores, np.array([0, 0]), mask=np.array([[1, 0], [1, 0]])).item()  # alone: -ln 1
    0.0
    """
    chex.assert_rank([scores, labels], [2, 1])
    chex.assert_equal_shape_prefix([scores, labels], 1)
    scores = jnp.asarray(scores)  # NumPy float64 in: one-hot and floor in jax's dtype
    valid = _valid(scores, mask)
    log_p = _masked_log_softmax(scores, valid)
    onehot = jax.nn.one_hot(labels, scores.shape[1], dtype=scores.dtype) * valid
    nll = -jnp.sum(onehot * log_p, axis=1)
    return _safe_mean(nll, jnp.sum(onehot, axis=1))


def inbatch_cross_entropy(
    scores: chex.Array,
    *,
    group_size: int,
    exclude_own_negatives: bool = True,
    mask: chex.Array | None = None,
) -> chex.Array:
    """In-batch CE over all passages of the batch (ColBERTv2's in-batch term).

    scores: [Bq, Bq * N], passages grouped per query as [pos, neg_1, ..., neg_{N-1}] with
    N = group_size. Query i's label is column i*N; every other query's passages are negatives;
    with exclude_own_negatives, columns i*N+1 .. i*N+N-1 (its own hard negatives) are masked out.
    mask: optional [Bq, Bq * N] extra validity (e.g. padded passages).
    """
    chex.assert_rank(scores, 2)
    n_queries, n_passages = scores.shape
    if n_passages != n_queries * group_size:
        raise ValueError(
            f"inbatch_cross_entropy: scores shape {scores.shape} is not [Bq, Bq*{group_size}]"
        )
    col = jnp.arange(n_passages)[None, :]
    row = jnp.arange(n_queries)[:, None]
    own_negative = (col // group_size == row) & (col % group_size != 0)
    valid = _valid(scores, mask)
    if exclude_own_negatives:
        valid = valid & ~own_negative
    labels = jnp.arange(n_queries) * group_size
    return infonce(scores, labels, mask=valid)


def localized_contrastive(scores: chex.Array, *, mask: chex.Array | None = None) -> chex.Array:
    """Localised contrastive estimation: InfoNCE over [pos, neg_1..neg_n] with label 0.

    scores: [B, 1 + n] -> scalar.
    """
    chex.assert_rank(scores, 2)
    return infonce(scores, jnp.zeros(scores.shape[0], jnp.int32), mask=mask)


def token_cross_entropy(logits: chex.Array, targets: chex.Array, mask: chex.Array) -> chex.Array:
    """Token reconstruction CE, mean over valid tokens of logsumexp_v logits[b,l,v] - logits[b,l,y].

    logits: [B, L, V]; targets: [B, L] ints; mask: [B, L]. Returns 0 when no token is valid.
    """
    chex.assert_rank([logits, targets, mask], [3, 2, 2])
    chex.assert_equal_shape([targets, mask])
    chex.assert_equal_shape_prefix([logits, targets], 2)
    valid = mask.astype(bool)
    safe_targets = jnp.clip(targets, 0, logits.shape[-1] - 1)
    picked = jnp.take_along_axis(logits, safe_targets[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - picked
    return _safe_mean(nll, valid)
