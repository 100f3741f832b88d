"""Learned-sparse kernels: log saturation, masked max pooling, FLOPS, IDF weighting, top-k pruning.

Shapes: B batch, L tokens, V vocabulary, N candidates per query. All functions are pure, jit-safe
and never return NaN or -inf when every position of a row is masked.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import chex
import jax
import jax.numpy as jnp
import numpy as np

FlopsMode = Literal["idf_aware", "uniform"]


def log_saturation(logits: chex.Array, *, double_log: bool = False) -> chex.Array:
    """Term weights w = log(1 + ReLU(x)); with double_log, w = log(1 + log(1 + ReLU(x))).

    The second log1p is the later "L0" variant of inference-free sparse models (off by default).
    Any shape in, same shape out.
    """
    w = jnp.log1p(jax.nn.relu(logits))
    return jnp.log1p(w) if double_log else w


def masked_max_pool(x: chex.Array, mask: chex.Array) -> chex.Array:
    """Max over the valid positions of each row: out[b, v] = max_{l : mask[b, l]} x[b, l, v].

    x: [B, L, V]; mask: [B, L] (bool or 0/1). Returns [B, V]; a row with no valid position is 0
    (not -inf), and its gradient is 0.
    """
    chex.assert_rank([x, mask], [3, 2])
    chex.assert_equal_shape_prefix([x, mask], 2)
    x = jnp.asarray(x)  # the floor in jax's dtype (a NumPy float64's would be -inf)
    valid = mask.astype(bool)[..., None]
    lowest = jnp.finfo(x.dtype).min
    pooled = jnp.max(jnp.where(valid, x, lowest), axis=1)
    return jnp.where(jnp.any(valid, axis=1), pooled, jnp.zeros_like(pooled))


def sparse_doc_weights(
    mlm_logits: chex.Array,
    attention_mask: chex.Array,
    *,
    special_token_ids: Sequence[int] | chex.Array = (),
    double_log: bool = False,
) -> chex.Array:
    """Inference-free sparse document vector: w_t = log(1 + ReLU(max_{l valid} logit_{l,t})).

    mlm_logits: [B, L, V] (MLM head, decoder tied to word embeddings); attention_mask: [B, L].
    Max-then-saturate equals saturate-then-max because log1p∘ReLU is monotone. Columns listed in
    special_token_ids ([CLS], [SEP], [PAD], ...) are set to 0. Returns [B, V], all >= 0.
    """
    chex.assert_rank(mlm_logits, 3)
    w = log_saturation(masked_max_pool(mlm_logits, attention_mask), double_log=double_log)
    special = jnp.asarray(special_token_ids, dtype=jnp.int32).reshape(-1)
    return w.at[:, special].set(0.0)


def flops(w: chex.Array) -> chex.Array:
    """FLOPS regulariser (Paria et al., 2020): sum_t (mean_b |w[b, t]|)^2.  w: [B, V] -> scalar.

    >>> import numpy as np
    >>> flops(np.array([[1., 0., 0.], [3., -2., 0.]])).item()   # column means 2, 1, 0: 4 + 1
    5.0
    """
    chex.assert_rank(w, 2)
    return jnp.sum(jnp.square(jnp.mean(jnp.abs(w), axis=0)))


def flops_weight(step: chex.Numeric, *, lam: float, warmup_steps: int) -> chex.Array:
    """Quadratic warm-up of the FLOPS weight: lambda(s) = lam * min(1, (s + 1) / T)^2.

    step may be a traced integer (the train step); T = warmup_steps <= 0 means no warm-up.
    """
    if warmup_steps <= 0:
        return jnp.asarray(lam, jnp.float32)
    progress = (jnp.asarray(step, jnp.float32) + 1.0) / float(warmup_steps)
    return lam * jnp.square(jnp.minimum(1.0, progress))


def idf_weights(
    df: chex.Array, n_docs: chex.Numeric, *, unseen_idf: float | None = 0.0
) -> chex.Array:
    """BM25-style IDF per vocabulary entry: idf_t = ln(1 + (N - df_t + 0.5) / (df_t + 0.5)).

    df: [V] document frequencies (a document counts a token once); n_docs: N.
    unseen_idf: value for tokens with df == 0 (they never occur in the corpus text, so any doc
    weight on them comes from MLM expansion). Default 0.0 drops them from queries; 1.0 keeps them
    at unit weight; None applies the formula (ln(2N + 2), the largest IDF of all).
    Returns [V] float32.
    """
    chex.assert_rank(df, 1)
    df = jnp.asarray(df, jnp.float32)
    n = jnp.asarray(n_docs, jnp.float32)
    idf = jnp.log1p((n - df + 0.5) / (df + 0.5))
    if unseen_idf is None:
        return idf
    return jnp.where(df > 0, idf, jnp.float32(unseen_idf))


def idf_query_vector(token_ids: chex.Array, mask: chex.Array, idf: chex.Array) -> chex.Array:
    """Query vector (no model): q[b, t] = idf_t if token t is at a valid spot of query b, else 0.

    token_ids: [B, L] ints (tokenised without special tokens); mask: [B, L]; idf: [V].
    A token repeated in the query still counts once. Returns [B, V].
    """
    chex.assert_rank([token_ids, mask, idf], [2, 2, 1])
    chex.assert_equal_shape([token_ids, mask])
    batch = token_ids.shape[0]
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], token_ids.shape)
    present = jnp.zeros((batch, idf.shape[0]), idf.dtype)
    # Scatter-max of 0/1 flags: duplicates stay 1, masked positions never switch a term on.
    present = present.at[rows, token_ids].max(mask.astype(idf.dtype))
    return present * idf[None, :]


def idf_aware_flops(w: chex.Array, idf: chex.Array, *, mode: FlopsMode = "idf_aware") -> chex.Array:
    """FLOPS for IDF-weighted scoring s = sum_t idf_t q_t w_t.  w: [B, V], idf: [V] -> scalar.

    "idf_aware": FLOPS(w) on the raw weights while the ranking loss sees idf * w, so low-IDF
    tokens pay relatively more per unit of score and informative tokens survive.
    "uniform" (ablation): FLOPS(idf * w), i.e. the penalty sees the same weights as the score.
    """
    chex.assert_rank([w, idf], [2, 1])
    if mode == "idf_aware":
        return flops(w)
    if mode == "uniform":
        return flops(w * idf[None, :])
    raise ValueError(f"idf_aware_flops: mode must be 'idf_aware' or 'uniform', got {mode!r}")


def topk_prune(w: chex.Array, k: int) -> chex.Array:
    """Keep the k largest weights of each row, zero the rest.  w: [B, V] -> [B, V].

    Ties are broken towards the lower vocabulary id (jax.lax.top_k). k >= V returns w unchanged.
    Gradients flow to the kept entries only.

    >>> import numpy as np
    >>> topk_prune(np.array([[1., 4., 2., 4.], [0., 3., 5., 1.]]), 2).tolist()
    [[0.0, 4.0, 0.0, 4.0], [0.0, 3.0, 5.0, 0.0]]
    """
    chex.assert_rank(w, 2)
    if k < 0:
        raise ValueError(f"topk_prune: k must be >= 0, got {k}")
    if k >= w.shape[1]:
        return w
    values, idx = jax.lax.top_k(w, k)
    rows = jnp.arange(w.shape[0])[:, None]
    return jnp.zeros_like(w).at[rows, idx].set(values)


def sparse_scores(q: chex.Array, d: chex.Array) -> chex.Array:
    """All-pairs dot products s[i, j] = sum_t q[i, t] d[j, t].

    q: [Bq, V], d: [Bd, V] -> [Bq, Bd].
    """
    chex.assert_rank([q, d], 2)
    chex.assert_equal_shape_suffix([q, d], 1)
    return q @ d.T


def sparse_scores_nway(q: chex.Array, d: chex.Array) -> chex.Array:
    """Each query against its own candidates: s[b, n] = sum_t q[b, t] d[b, n, t].

    q: [B, V], d: [B, N, V] -> [B, N].
    """
    chex.assert_rank([q, d], [2, 3])
    chex.assert_equal_shape_prefix([q, d], 1)
    chex.assert_equal_shape_suffix([q, d], 1)
    return jnp.einsum("bv,bnv->bn", q, d)


def inbatch_columns(b: int, n: int) -> np.ndarray:
    """[B, B*N] candidate order for in-batch negatives over B queries with N candidates each.

    Row i lists its own N candidates first, then those of queries i+1, ..., B-1, 0, ..., i-1, so
    candidate 0 stays the positive and every n-way loss applies unchanged. Data pipelines order
    their teacher scores with the same table.
    """
    return (np.arange(b * n)[None, :] + n * np.arange(b)[:, None]) % (b * n)


def sparse_scores_inbatch(q: chex.Array, d: chex.Array) -> chex.Array:
    """Each query against every candidate of the batch, own ones first (`inbatch_columns`).

    q: [B, V], d: [B, N, V] -> [B, B*N].
    """
    chex.assert_rank([q, d], [2, 3])
    chex.assert_equal_shape_prefix([q, d], 1)
    chex.assert_equal_shape_suffix([q, d], 1)
    b, n, v = d.shape
    return jnp.take_along_axis(q @ d.reshape(b * n, v).T, jnp.asarray(inbatch_columns(b, n)), axis=1)
