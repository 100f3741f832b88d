"""Residual compression: NumPy codec vs float64 / bit-by-bit references; JAX compress == codec."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.index import codec
from jaxir.ops import residual

NBITS = [1, 2, 4]


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def ref_pack(buckets, nbits):
    """Bit-by-bit reference: per dim LSB first, bytes filled MSB first."""
    out = []
    for row in buckets.reshape(-1, buckets.shape[-1]):
        stream = [(int(b) >> i) & 1 for b in row for i in range(nbits)]
        out.append([sum(bit << (7 - j) for j, bit in enumerate(stream[s:s + 8]))
                    for s in range(0, len(stream), 8)])
    return np.array(out, np.uint8).reshape(*buckets.shape[:-1], -1)


def jax_buckets(x, cutoffs, nbits):
    """Bucket indices from the JAX compress: one all-zero centroid makes the residual x itself."""
    zero = jnp.zeros((1, x.shape[1]), jnp.float32)
    codes, packed = residual.compress(jnp.asarray(x), zero, jnp.asarray(cutoffs), nbits=nbits)
    assert not np.asarray(codes).any()
    return codec.unpack_bits(np.asarray(packed), nbits=nbits)


def test_pack_layout_hand_computed():
    # nbits=2, buckets [1, 2, 3, 0] -> bits 10 01 11 00 -> 0b10011100 = 156.
    assert codec.pack_bits(np.array([[1, 2, 3, 0]], np.uint8), nbits=2).tolist() == [[156]]
    # nbits=4, [1, 8] -> 1000 0001 -> 0b10000001 = 129.
    assert codec.pack_bits(np.array([1, 8], np.uint8), nbits=4).tolist() == [129]


@pytest.mark.parametrize("nbits", NBITS)
def test_pack_equals_bit_by_bit_reference_and_round_trips(nbits):
    rng = np.random.default_rng(nbits)
    b = rng.integers(0, 1 << nbits, size=(3, 5, 32)).astype(np.uint8)
    packed = codec.pack_bits(b, nbits=nbits)
    assert packed.shape == (3, 5, 32 * nbits // 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(packed, ref_pack(b, nbits))
    np.testing.assert_array_equal(codec.unpack_bits(packed, nbits=nbits), b)


@pytest.mark.parametrize("nbits", NBITS)
def test_fit_buckets_matches_float64_quantiles(nbits):
    rng = np.random.default_rng(10 + nbits)
    r = (0.1 * rng.standard_t(4, size=(300, 16))).astype(np.float32)
    b = 1 << nbits
    pooled = r.astype(np.float64).ravel()
    cut, w = codec.fit_buckets(r, nbits=nbits)
    np.testing.assert_allclose(cut, np.quantile(pooled, np.arange(1, b) / b), atol=1e-6)
    np.testing.assert_allclose(w, np.quantile(pooled, (np.arange(b) + 0.5) / b), atol=1e-6)
    assert np.all(np.diff(w) > 0)


def test_quantize_counts_cutoffs_strictly_below_value():
    cutoffs = np.array([-0.1, 0.0, 0.2], np.float32)
    r = np.array([[-0.5, -0.1, -0.05, 0.0, 0.1, 0.2, 0.9, 0.3]], np.float32)
    want = [[0, 0, 1, 1, 2, 2, 3, 3]]  # torch.bucketize: a value equal to a cutoff stays below it
    assert codec.quantize(r, cutoffs).tolist() == want
    assert jax_buckets(r, cutoffs, 2).tolist() == want
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    ref = (x.astype(np.float64)[..., None] > cutoffs.astype(np.float64)).sum(-1)
    np.testing.assert_array_equal(codec.quantize(x, cutoffs), ref)
    np.testing.assert_array_equal(jax_buckets(x, cutoffs, 2), ref)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(42)
    centers = unit(rng.normal(size=(16, 32)))
    x = unit(centers[rng.integers(0, 16, 3000)] + 0.15 * rng.normal(size=(3000, 32)))
    return x, {nb: codec.fit_codec_numpy(x[:2500], 64, nb, seed=0) for nb in NBITS}


@pytest.mark.parametrize("nbits", NBITS)
def test_compress_equals_float64_reference_and_jax_compress(fitted, nbits):
    x, codecs = fitted
    c = codecs[nbits]
    assert c.centroids.dtype == np.float16 and c.bytes_per_vector == 32 * nbits // 8 + 4
    fresh = x[2500:]
    codes, packed = c.compress(fresh)
    # float64 reference: nearest stored (fp16) centroid, strict bucket count, bit-by-bit packing.
    c64 = c.centroids.astype(np.float64)
    want_codes = np.argmax(fresh.astype(np.float64) @ c64.T, axis=1)
    r64 = fresh.astype(np.float64) - c64[want_codes]
    want_buckets = (r64[..., None] > c.cutoffs.astype(np.float64)).sum(-1)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(packed, ref_pack(want_buckets, nbits))
    # The JAX path (the index build's) writes the same bytes, for an odd row count too.
    for rows in (len(fresh), 37):
        codes_j, packed_j = residual.compress(jnp.asarray(fresh[:rows]), jnp.asarray(c.centroids),
                                              jnp.asarray(c.cutoffs), nbits=nbits)
        assert codes_j.dtype == jnp.int32 and packed_j.dtype == jnp.uint8
        np.testing.assert_array_equal(np.asarray(codes_j), codes[:rows])
        np.testing.assert_array_equal(np.asarray(packed_j), packed[:rows])
    # float64 reference decode from the bucket indices.
    dec = c.decompress(codes, packed)
    v = c64[codes] + c.weights.astype(np.float64)[want_buckets]
    np.testing.assert_allclose(dec, v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-6)


def test_compress_blocks_large_score_matrices(monkeypatch, fitted):
    """Rows are scored in blocks when [N, K] is over the block budget; codes do not change."""
    x, codecs = fitted
    c = codecs[2]
    monkeypatch.setattr(residual, "_SCORE_BLOCK", 64 * 64)  # 64 rows per block at K = 64
    codes, packed = residual.compress(jnp.asarray(x[:512]), jnp.asarray(c.centroids),
                                      jnp.asarray(c.cutoffs), nbits=2)
    want_codes, want_packed = c.compress(x[:512])
    np.testing.assert_array_equal(np.asarray(codes), want_codes)
    np.testing.assert_array_equal(np.asarray(packed), want_packed)


def test_more_bits_reconstruct_better(fitted):
    x, codecs = fitted
    fresh = x[2500:]
    cos = {}
    for nb in NBITS:
        decoded = codecs[nb].decompress(*codecs[nb].compress(fresh))
        cos[nb] = float(np.mean(np.sum(decoded * fresh, axis=1)))
    centroids = unit(codecs[2].centroids.astype(np.float32))
    centroid_only = float(np.mean(np.max(fresh @ centroids.T, axis=1)))
    assert centroid_only < cos[1] < cos[2] < cos[4], (centroid_only, cos)
    assert cos[2] > 0.95


def test_bad_nbits_and_dims_raise():
    with pytest.raises(ValueError, match="nbits"):
        codec.pack_bits(np.zeros((2, 8), np.uint8), nbits=3)
    with pytest.raises(ValueError, match="multiple of 8"):
        codec.pack_bits(np.zeros((2, 6), np.uint8), nbits=1)
    with pytest.raises(ValueError, match="multiple of 8"):
        residual.compress(jnp.zeros((2, 6)), jnp.zeros((3, 6)), jnp.zeros(1), nbits=1)
    with pytest.raises(ValueError, match="cutoffs"):
        codec.ResidualCodec(np.zeros((4, 8), np.float32), np.zeros(2, np.float32),
                            np.zeros(4, np.float32), 2)


def test_quantize_equals_torch_bucketize_including_ties():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    cutoffs = np.sort(rng.normal(size=15)).astype(np.float32)
    x = np.concatenate([rng.normal(size=(400,)), cutoffs, cutoffs]).astype(np.float32).reshape(-1, 10)
    want = torch.bucketize(torch.from_numpy(x), torch.from_numpy(cutoffs)).numpy()
    np.testing.assert_array_equal(codec.quantize(x, cutoffs), want)
    np.testing.assert_array_equal(jax_buckets(x, cutoffs, 4), want)
