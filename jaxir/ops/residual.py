"""ColBERTv2 residual compression in JAX: bucket fitting, quantisation, bit packing, decoding.

A unit vector v is stored as its nearest centroid id (code = argmax_c <C_c, v>) plus the residual
r = v - C_code quantised per dimension to one of B = 2^nbits buckets:
  cutoffs = quantile(all held-out residual values, j / B),        j = 1..B-1
  weights = quantile(all held-out residual values, (j + 1/2) / B), j = 0..B-1
  bucket(r_d) = #{cutoffs < r_d} (torch.bucketize)
Bits layout (ColBERT's): each dimension's bucket index is emitted least-significant bit first, the
whole stream is packed most-significant bit first into bytes (as np.packbits does), so a vector
takes dim * nbits / 8 bytes. Decode: v_hat = normalize(C_code + weights[bucket]).
`jaxir.index.codec` is the NumPy twin of this module and must stay byte-for-byte equal.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxir.ops.kmeans import assign

Array = chex.Array
NBITS_CHOICES = (1, 2, 4)


def check_nbits(nbits: int, dim: int | None = None) -> None:
    """Raise ValueError unless nbits is 1, 2 or 4 and dim * nbits fills whole bytes."""
    if nbits not in NBITS_CHOICES:
        raise ValueError(f"nbits must be one of {NBITS_CHOICES}, got {nbits}")
    if dim is not None and (dim * nbits) % 8:
        raise ValueError(f"dim * nbits must be a multiple of 8, got dim={dim}, nbits={nbits}")


def bucket_quantiles(nbits: int) -> tuple[Array, Array]:
    """Quantile levels: cutoffs j/B (j=1..B-1) and weights (j+1/2)/B (j=0..B-1)."""
    check_nbits(nbits)
    b = 1 << nbits
    cutoff_q = jnp.arange(1, b, dtype=jnp.float32) / b
    weight_q = (jnp.arange(b, dtype=jnp.float32) + 0.5) / b
    return cutoff_q, weight_q


@functools.partial(jax.jit, static_argnames=("nbits",))
def fit_buckets(residuals: Array, *, nbits: int) -> tuple[Array, Array]:
    """Bucket cutoffs [B-1] and weights [B] (float32) from held-out residuals [M, D]."""
    chex.assert_rank(residuals, 2)
    values = residuals.astype(jnp.float32).reshape(-1)
    cutoff_q, weight_q = bucket_quantiles(nbits)
    return jnp.quantile(values, cutoff_q), jnp.quantile(values, weight_q)


def quantize(residuals: Array, cutoffs: Array) -> Array:
    """Bucket index per value: [..., D] -> [..., D] uint8, bucket = #{cutoffs < value}.

    Strict, as ColBERT's `torch.bucketize(r, cutoffs)` (right=False).
    """
    chex.assert_rank(cutoffs, 1)
    below = residuals.astype(jnp.float32)[..., None] > cutoffs.astype(jnp.float32)
    return jnp.sum(below, axis=-1).astype(jnp.uint8)


def pack_bits(buckets: Array, *, nbits: int) -> Array:
    """[..., D] bucket indices -> [..., D * nbits / 8] uint8 in ColBERT's bit layout."""
    check_nbits(nbits, buckets.shape[-1])
    shifts = jnp.arange(nbits, dtype=jnp.uint8)
    bits = (buckets.astype(jnp.uint8)[..., None] >> shifts) & 1  # [..., D, nbits], LSB first
    bits = bits.reshape(*buckets.shape[:-1], -1, 8)  # [..., bytes, 8], MSB first in a byte
    place = jnp.array([128, 64, 32, 16, 8, 4, 2, 1], dtype=jnp.uint32)
    return jnp.sum(bits.astype(jnp.uint32) * place, axis=-1).astype(jnp.uint8)


def unpack_bits(packed: Array, *, nbits: int) -> Array:
    """Inverse of `pack_bits`: [..., P] uint8 -> [..., P * 8 / nbits] uint8 bucket indices."""
    check_nbits(nbits)
    chex.assert_type(packed, jnp.uint8)
    shifts = jnp.arange(7, -1, -1, dtype=jnp.uint8)
    bits = (packed[..., None] >> shifts) & 1  # [..., P, 8]
    bits = bits.reshape(*packed.shape[:-1], -1, nbits)  # [..., D, nbits]
    weights = (1 << jnp.arange(nbits, dtype=jnp.uint8)).astype(jnp.uint8)
    return jnp.sum(bits * weights, axis=-1).astype(jnp.uint8)


def _normalize(v: Array) -> Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=-1, keepdims=True))
    return v / jnp.maximum(norm, 1e-12)


def decode(codes: Array, packed: Array, centroids: Array, weights: Array, *, nbits: int) -> Array:
    """Decompress: codes [...], packed [..., P] -> [..., D] float32 unit vectors.

    v_hat = normalize(C[code] + weights[bucket]).
    """
    chex.assert_rank([centroids, weights], [2, 1])
    buckets = unpack_bits(packed, nbits=nbits)
    chex.assert_shape(buckets, (*codes.shape, centroids.shape[1]))
    v = centroids.astype(jnp.float32)[codes] + weights.astype(jnp.float32)[buckets]
    return _normalize(v)


def compress(x: Array, centroids: Array, cutoffs: Array, *, nbits: int) -> tuple[Array, Array]:
    """Compress vectors x [N, D] -> (codes [N] int32, packed residuals [N, D * nbits / 8] uint8).

    Residuals are taken against `centroids` exactly as stored (e.g. fp16, cast to float32), so
    decoding with the same array reproduces the quantised vector.
    """
    chex.assert_rank([x, centroids], 2)
    c32 = centroids.astype(jnp.float32)
    codes = assign(x, c32)
    residuals = x.astype(jnp.float32) - c32[codes]
    return codes, pack_bits(quantize(residuals, cutoffs), nbits=nbits)
