"""ColBERTv2 residual codec in NumPy (the index runtime never imports JAX).

Byte-for-byte twin of `jaxir.ops.residual.compress`, the index build's compressor (the formulas
and the bit layout are stated there once):
  code = argmax_c <C_c, v>;  bucket(r_d) = #{cutoffs < r_d};  v_hat = normalize(C_code + w[bucket])
This module fits the buckets, decodes at search time and compresses without JAX
(`PlaidIndexBuilder.add`, `IndexOptions(device_compress=False)`).
`fit_codec_numpy` is a small, JAX-free way to fit centroids and buckets (tests, tiny corpora);
large indexes fit centroids with `jaxir.ops.kmeans` and pass them to `ResidualCodec`.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

NBITS_CHOICES = (1, 2, 4)
_ASSIGN_BLOCK = 8192  # rows per [block, K] score matrix


def check_nbits(nbits: int, dim: int | None = None) -> None:
    """Raise ValueError unless nbits is 1, 2 or 4 and dim * nbits fills whole bytes."""
    if nbits not in NBITS_CHOICES:
        raise ValueError(f"nbits must be one of {NBITS_CHOICES}, got {nbits}")
    if dim is not None and (dim * nbits) % 8:
        raise ValueError(f"dim * nbits must be a multiple of 8, got dim={dim}, nbits={nbits}")


def fit_buckets(residuals: np.ndarray, *, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket cutoffs [B-1] and weights [B] (float32) from held-out residuals [M, D]."""
    check_nbits(nbits)
    b = 1 << nbits
    values = np.asarray(residuals, np.float32).reshape(-1)
    cutoff_q = np.arange(1, b, dtype=np.float32) / b
    weight_q = (np.arange(b, dtype=np.float32) + 0.5) / b
    return (np.quantile(values, cutoff_q).astype(np.float32),
            np.quantile(values, weight_q).astype(np.float32))


def quantize(residuals: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Bucket index per value: [..., D] -> [..., D] uint8, bucket = #{cutoffs < value}.

    Strict, as ColBERT's `torch.bucketize(r, cutoffs)` (right=False): a value equal to a cutoff
    falls in the lower bucket.
    """
    r = np.asarray(residuals, np.float32)
    return np.searchsorted(np.asarray(cutoffs, np.float32), r, side="left").astype(np.uint8)


def pack_bits(buckets: np.ndarray, *, nbits: int) -> np.ndarray:
    """[..., D] bucket indices -> [..., D * nbits / 8] uint8 (ColBERT's bit layout)."""
    buckets = np.asarray(buckets, np.uint8)
    check_nbits(nbits, buckets.shape[-1])
    bits = (buckets[..., None] >> np.arange(nbits, dtype=np.uint8)) & 1  # LSB first per dim
    return np.packbits(bits.reshape(*buckets.shape[:-1], -1), axis=-1)


@functools.lru_cache(maxsize=None)
def _byte_buckets(nbits: int) -> np.ndarray:
    """[256, 8 / nbits] uint8: the bucket indices packed in each byte value (read-only)."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).reshape(256, -1, nbits)
    table = (bits << np.arange(nbits, dtype=np.uint8)).sum(axis=-1, dtype=np.uint8)
    table.flags.writeable = False
    return table


def unpack_bits(packed: np.ndarray, *, nbits: int) -> np.ndarray:
    """Inverse of `pack_bits`: [..., P] uint8 -> [..., P * 8 / nbits] uint8."""
    check_nbits(nbits)
    packed = np.asarray(packed)
    if packed.dtype != np.uint8:
        raise ValueError(f"packed residuals must be uint8, got {packed.dtype}")
    # np.take through a per-byte table is much faster than unpackbits + shifts.
    return np.take(_byte_buckets(nbits), packed, axis=0).reshape(*packed.shape[:-1], -1)


def normalize(v: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise L2 normalisation with an epsilon floor (zero rows stay zero); `out=v` in place."""
    norm = np.sqrt(np.einsum("...d,...d->...", v, v))[..., None]
    return np.divide(v, np.maximum(norm, np.float32(1e-12)), out=out)


def assign_codes(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid by inner product, blocked: [N, D] x [K, D] -> [N] int32."""
    c32 = np.asarray(centroids, np.float32)
    out = np.empty(len(x), np.int32)
    rows = max(1, min(_ASSIGN_BLOCK, 2**24 // max(len(c32), 1)))  # score block <= 64 MiB at any K
    for s in range(0, len(x), rows):
        block = np.asarray(x[s:s + rows], np.float32)
        out[s:s + len(block)] = np.argmax(block @ c32.T, axis=1)
    return out


def byte_lookup(weights: np.ndarray, *, nbits: int) -> np.ndarray:
    """[256, 8 / nbits] float32: the bucket weights that one packed byte value decodes to."""
    check_nbits(nbits)
    return np.asarray(weights, np.float32)[_byte_buckets(nbits)]


def decode(codes: np.ndarray, packed: np.ndarray, centroids: np.ndarray,
           weights: np.ndarray, *, nbits: int, lookup: np.ndarray | None = None) -> np.ndarray:
    """codes [...], packed [..., P] -> [..., D] float32 unit vectors (v_hat).

    One gather through a per-byte table (`byte_lookup`) replaces unpacking bit by bit.
    """
    v = residual_values(packed, byte_lookup(weights, nbits=nbits) if lookup is None else lookup)
    v += np.take(np.asarray(centroids, np.float32), codes, axis=0)
    return normalize(v, out=v)


def residual_values(packed: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """packed [..., P] -> the decoded residuals r [..., D] float32 (bucket weights, no centroid)."""
    packed = np.asarray(packed)
    return np.take(lookup, packed, axis=0).reshape(*packed.shape[:-1], -1)


@dataclasses.dataclass(frozen=True)
class ResidualCodec:
    """Centroids [K, D] (fp16 or fp32, used exactly as stored), cutoffs [B-1], weights [B]."""

    centroids: np.ndarray
    cutoffs: np.ndarray
    weights: np.ndarray
    nbits: int

    def __post_init__(self):
        check_nbits(self.nbits, self.dim)
        b = 1 << self.nbits
        if self.cutoffs.shape != (b - 1,) or self.weights.shape != (b,):
            raise ValueError(f"nbits={self.nbits} needs cutoffs [{b - 1}] and weights [{b}], got "
                             f"{self.cutoffs.shape} and {self.weights.shape}")

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def bytes_per_vector(self) -> int:
        """Packed residual bytes + 4 bytes of int32 code."""
        return self.dim * self.nbits // 8 + 4

    def compress(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, D] unit vectors -> (codes [N] int32, packed [N, D * nbits / 8] uint8)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"compress expects [N, {self.dim}] vectors, got {x.shape}")
        codes = assign_codes(x, self.centroids32)
        residuals = x - self.centroids32[codes]
        return codes, pack_bits(quantize(residuals, self.cutoffs), nbits=self.nbits)

    @functools.cached_property
    def lookup(self) -> np.ndarray:
        """The per-byte residual table (`byte_lookup`), derived once per codec."""
        return byte_lookup(self.weights, nbits=self.nbits)

    @functools.cached_property
    def centroids32(self) -> np.ndarray:
        """The centroids as float32 (what every score and residual is computed against)."""
        return np.asarray(self.centroids, np.float32)

    def decompress(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """(codes [N], packed [N, P]) -> [N, D] float32 unit vectors."""
        return decode(codes, packed, self.centroids32, self.weights, nbits=self.nbits,
                      lookup=self.lookup)

    def residuals(self, packed: np.ndarray) -> np.ndarray:
        """packed [N, P] -> r [N, D] float32, so that decompress = normalize(C_code + r)."""
        return residual_values(packed, self.lookup)

    def inverse_norms(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """[N] float32 1 / max(||C_code + r||, 1e-12): the factor `decompress` normalises by.

        With it, q . v_hat = (q . C_code + q . r) / ||C_code + r|| needs no decoded vector: the
        first term is a centroid score PLAID already has, the second one GEMM over r.
        """
        v = self.residuals(packed)
        v += np.take(self.centroids32, codes, axis=0)
        return 1.0 / np.maximum(np.sqrt(np.einsum("nd,nd->n", v, v)), np.float32(1e-12))


def kmeans_numpy(x: np.ndarray, k: int, *, iters: int = 4, seed: int = 0) -> np.ndarray:
    """Small spherical k-means (float32, NumPy): [N, D] -> [min(k, N), D] unit centroids."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    k = min(k, len(x))
    centroids = normalize(x[rng.choice(len(x), size=k, replace=False)])
    for _ in range(iters):
        codes = assign_codes(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, codes, x)
        counts = np.bincount(codes, minlength=k)
        # Empty clusters keep their previous centroid.
        centroids = np.where(counts[:, None] > 0, normalize(sums), centroids)
    return centroids


def fit_codec_numpy(sample: np.ndarray, k: int, nbits: int, *, seed: int = 0, iters: int = 4,
                    heldout_frac: float = 0.05, max_heldout: int = 50_000,
                    centroid_dtype=np.float16) -> ResidualCodec:
    """Fit centroids on a sample of token vectors [M, D] and buckets on a held-out part.

    As in ColBERTv2: shuffle, hold out min(5%, 50k) vectors, k-means the rest (k clamped to the
    number of training vectors), fit buckets on the held-out residuals.
    """
    sample = np.asarray(sample, np.float32)
    if sample.ndim != 2 or len(sample) < 2:
        raise ValueError(f"fit_codec_numpy needs a [M >= 2, D] sample, got {sample.shape}")
    order = np.random.default_rng(seed).permutation(len(sample))
    n_held = max(1, min(int(heldout_frac * len(sample)), max_heldout))
    train, held = sample[order[n_held:]], sample[order[:n_held]]
    centroids = kmeans_numpy(train, k, iters=iters, seed=seed).astype(centroid_dtype)
    c32 = centroids.astype(np.float32)
    cutoffs, weights = fit_buckets(held - c32[assign_codes(held, c32)], nbits=nbits)
    return ResidualCodec(centroids, cutoffs, weights, nbits)
