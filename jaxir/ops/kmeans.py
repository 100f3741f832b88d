"""(Spherical) k-means under jit, for ColBERT/PLAID centroids.

Lloyd iterations over x [N, D], streamed in fixed-size chunks with `lax.scan` so the [chunk, k]
score matrix (not [N, k]) bounds memory. Assignment is argmax_c <x, C_c> (spherical) or
argmin_c ||x - C_c||^2 = argmax_c <x, C_c> - ||C_c||^2 / 2 (plain). A cluster that gets no
points keeps its previous centroid. Spherical centroids are L2-normalised after every update.
"""
from __future__ import annotations

import functools
import math
import warnings

import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def num_centroids(n_embeddings_est: int) -> int:
    """PLAID's centroid count: K = 2^floor(log2(16 * sqrt(n_embeddings_est))) (at least 1)."""
    if n_embeddings_est < 1:
        raise ValueError(f"num_centroids needs n_embeddings_est >= 1, got {n_embeddings_est}")
    return 2 ** int(math.floor(math.log2(16.0 * math.sqrt(n_embeddings_est))))


def _default_chunk(n: int, k: int) -> int:
    """Rows per chunk so a [chunk, k] float32 score block stays around 64 MiB."""
    return int(min(max(n, 1), max(256, min(8192, (1 << 24) // max(k, 1)))))


def _chunked(x: Array, chunk: int) -> tuple[Array, Array]:
    """[N, D] -> ([n_chunks, chunk, D] zero-padded, [n_chunks, chunk] validity)."""
    n, d = x.shape
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(n_chunks, chunk, d)
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)
    return xs, valid


def _assign_block(xb: Array, centroids: Array, spherical: bool) -> Array:
    """[b, D] x [k, D] -> [b] int32 nearest centroid."""
    scores = jnp.einsum("nd,kd->nk", xb, centroids, preferred_element_type=jnp.float32)
    if not spherical:
        scores = scores - 0.5 * jnp.sum(jnp.square(centroids.astype(jnp.float32)), axis=-1)
    return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def _normalize(c: Array) -> Array:
    norm = jnp.linalg.norm(c, axis=-1, keepdims=True)
    return c / jnp.maximum(norm, 1e-12)


@functools.partial(jax.jit, static_argnames=("iters", "chunk", "spherical"))
def _lloyd(x: Array, init: Array, *, iters: int, chunk: int, spherical: bool) -> Array:
    """`iters` Lloyd updates from `init` [k, D]; returns float32 centroids [k, D]."""
    k = init.shape[0]
    xs, valid = _chunked(x.astype(jnp.float32), chunk)

    def update(centroids, _):
        def accumulate(carry, block):
            sums, counts = carry
            xb, vb = block
            a = _assign_block(xb, centroids, spherical)
            w = vb.astype(jnp.float32)
            sums = sums + jax.ops.segment_sum(xb * w[:, None], a, num_segments=k)
            counts = counts + jax.ops.segment_sum(w, a, num_segments=k)
            return (sums, counts), None

        zeros = (jnp.zeros_like(centroids), jnp.zeros((k,), jnp.float32))
        (sums, counts), _ = jax.lax.scan(accumulate, zeros, (xs, valid))
        means = sums / jnp.maximum(counts, 1.0)[:, None]
        if spherical:
            means = _normalize(means)
        return jnp.where(counts[:, None] > 0, means, centroids), None

    start = _normalize(init.astype(jnp.float32)) if spherical else init.astype(jnp.float32)
    centroids, _ = jax.lax.scan(update, start, None, length=iters)
    return centroids


def kmeans(
    x: Array,
    k: int,
    *,
    iters: int = 4,
    seed: int = 0,
    spherical: bool = True,
    init: Array | None = None,
    chunk_size: int | None = None,
) -> Array:
    """Fit k centroids to x.

    Args:
      x: [N, D] points (unit-norm for the spherical ColBERT use).
      k: number of centroids; clamped to N with a warning.
      iters: Lloyd iterations [4, as in ColBERTv2].
      seed: picks k distinct points as the initial centroids (deterministic).
      spherical: cosine k-means with L2-normalised centroids; else Euclidean.
      init: optional [k, D] initial centroids (overrides seed).
      chunk_size: rows per step; default keeps the [chunk, k] scores near 64 MiB.
    Returns:
      [k', D] float32 centroids, k' = min(k, N).
    """
    chex.assert_rank(x, 2)
    n = x.shape[0]
    if n == 0 or k < 1:
        raise ValueError(f"kmeans needs N >= 1 points and k >= 1, got x {x.shape}, k={k}")
    if k > n:
        warnings.warn(f"kmeans: k={k} > N={n} points; clamping k to {n}", stacklevel=2)
        k = n
    if init is None:
        picks = jax.random.choice(jax.random.PRNGKey(seed), n, (k,), replace=False)
        init = jnp.asarray(x)[picks]
    chex.assert_shape(init, (k, x.shape[1]))
    chunk = chunk_size or _default_chunk(n, k)
    return _lloyd(jnp.asarray(x), jnp.asarray(init), iters=iters, chunk=chunk, spherical=spherical)


@functools.partial(jax.jit, static_argnames=("chunk", "spherical"))
def _assign_chunks(x: Array, centroids: Array, *, chunk: int, spherical: bool) -> Array:
    xs, _ = _chunked(x, chunk)
    codes = jax.lax.map(lambda xb: _assign_block(xb, centroids, spherical), xs)
    return codes.reshape(-1)[: x.shape[0]]


def assign(
    x: Array, centroids: Array, *, spherical: bool = True, chunk_size: int | None = None
) -> Array:
    """Nearest centroid of every point: [N, D] x [K, D] -> [N] int32 (argmax inner product)."""
    chex.assert_rank([x, centroids], 2)
    chex.assert_equal_shape_suffix([x, centroids], 1)
    chunk = chunk_size or _default_chunk(x.shape[0], centroids.shape[0])
    return _assign_chunks(jnp.asarray(x), jnp.asarray(centroids), chunk=chunk, spherical=spherical)

