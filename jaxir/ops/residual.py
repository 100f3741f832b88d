"""ColBERTv2 residual compression under jit: the index build's path (on the encoder's device).

A unit vector v is stored as its nearest centroid id (code = argmax_c <C_c, v>) plus the residual
r = v - C_code quantised per dimension to one of B = 2^nbits buckets:
  bucket(r_d) = #{cutoffs < r_d}   (strict, as torch.bucketize: a tie stays in the lower bucket)
with cutoffs [B-1] and weights [B] the quantiles j/B and (j + 1/2)/B of held-out residuals
(`jaxir.index.codec.fit_buckets`). Bit layout (ColBERT's): each dimension's bucket index is
emitted least-significant bit first and the stream is packed most-significant bit first into
bytes (as np.packbits does), so a vector takes dim * nbits / 8 bytes.
Decode: v_hat = normalize(C_code + weights[bucket]).

`jaxir.index.codec` is this module's byte-exact NumPy twin: it fits the buckets, decodes at search
time (the index runtime never imports JAX) and compresses where no JAX device is used.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxir.index.codec import check_nbits

Array = chex.Array
_SCORE_BLOCK = 1 << 24  # entries of one [rows, K] float32 score block (64 MiB)


def _codes(x: Array, centroids: Array) -> Array:
    """Nearest centroid by inner product, [N, D] x [K, D] -> [N] int32, in row blocks.

    Full float32 precision (no TF32/bf16 passes on GPU or TPU), so codes equal the NumPy codec's.
    """
    n, k = x.shape[0], centroids.shape[0]
    rows = n
    while rows > 1 and rows % 2 == 0 and rows * k > _SCORE_BLOCK:
        rows //= 2

    def block(xb):
        scores = jnp.einsum("nd,kd->nk", xb, centroids, precision=jax.lax.Precision.HIGHEST,
                            preferred_element_type=jnp.float32)
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)

    return jax.lax.map(block, x.reshape(n // rows, rows, -1)).reshape(n)


@functools.partial(jax.jit, static_argnames=("nbits",))
def compress(x: Array, centroids: Array, cutoffs: Array, *, nbits: int) -> tuple[Array, Array]:
    """Vectors x [N, D] -> (codes [N] int32, packed residuals [N, D * nbits / 8] uint8).

    Residuals are taken against `centroids` exactly as stored (e.g. fp16, cast to float32), so
    decoding with the same array reproduces the quantised vector. Jitted per shape: callers with
    varying N pad rows to a few bucket sizes (`jaxir.retrievers.colbert_build`).
    """
    chex.assert_rank([x, centroids, cutoffs], [2, 2, 1])
    check_nbits(nbits, x.shape[1])
    x, c32 = x.astype(jnp.float32), centroids.astype(jnp.float32)
    codes = _codes(x, c32)
    residuals = x - c32[codes]
    buckets = jnp.sum(residuals[..., None] > cutoffs.astype(jnp.float32), axis=-1, dtype=jnp.uint8)
    bits = (buckets[..., None] >> jnp.arange(nbits, dtype=jnp.uint8)) & 1
    bits = bits.reshape(x.shape[0], -1, 8)  # [N, bytes, 8]: LSB first per dim, MSB first per byte
    place = jnp.array([128, 64, 32, 16, 8, 4, 2, 1], dtype=jnp.uint8)
    return codes, jnp.sum(bits * place, axis=-1, dtype=jnp.uint8)
