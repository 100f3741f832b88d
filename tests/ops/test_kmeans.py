"""k-means vs a float64 NumPy Lloyd reference; determinism, clamping, empty clusters, quality."""
import math

import numpy as np
import pytest

from jaxir.ops.kmeans import assign, kmeans, num_centroids


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_lloyd(x, init, iters, spherical):
    """Plain float64 Lloyd: argmax <x, c> (or argmin distance), mean, normalise; empty keeps old."""
    x = np.asarray(x, np.float64)
    c = unit(np.asarray(init, np.float64)) if spherical else np.asarray(init, np.float64)
    for _ in range(iters):
        if spherical:
            a = np.argmax(x @ c.T, axis=1)
        else:
            a = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = c.copy()
        for j in range(len(c)):
            members = x[a == j]
            if len(members):
                m = members.mean(0)
                new[j] = m / np.linalg.norm(m) if spherical else m
        c = new
    return c


def clustered(rng, n, k, dim, noise):
    centers = unit(rng.normal(size=(k, dim)))
    x = centers[rng.integers(0, k, n)] + noise * rng.normal(size=(n, dim))
    return unit(x).astype(np.float32), centers


@pytest.mark.parametrize("spherical", [True, False])
def test_matches_float64_reference_and_chunking_is_invisible(spherical):
    rng = np.random.default_rng(0)
    x, _ = clustered(rng, 300, 6, 12, 0.3)
    init = x[rng.choice(300, 6, replace=False)]
    want = ref_lloyd(x, init, 5, spherical)
    for chunk in (64, 300, 1000):  # 300 % 64 != 0 exercises padding rows
        got = np.asarray(kmeans(x, 6, iters=5, init=init, spherical=spherical, chunk_size=chunk))
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_deterministic_by_seed_and_unit_norm():
    rng = np.random.default_rng(1)
    x, _ = clustered(rng, 500, 10, 16, 0.4)
    a, b = np.asarray(kmeans(x, 10, seed=3)), np.asarray(kmeans(x, 10, seed=3))
    c = np.asarray(kmeans(x, 10, seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_k_larger_than_n_is_clamped_with_warning():
    x = unit(np.random.default_rng(2).normal(size=(7, 8))).astype(np.float32)
    with pytest.warns(UserWarning, match="clamping"):
        c = kmeans(x, 20)
    assert c.shape == (7, 8)


def test_empty_cluster_keeps_previous_centroid():
    rng = np.random.default_rng(3)
    x = unit(np.abs(rng.normal(size=(200, 8)))).astype(np.float32)  # all in the positive orthant
    init = np.concatenate([x[:3], -np.ones((1, 8), np.float32) / np.sqrt(8)])  # never nearest
    c = np.asarray(kmeans(x, 4, init=init, iters=3))
    np.testing.assert_allclose(c[3], init[3], atol=1e-6)
    assert not np.allclose(c[:3], init[:3])


def test_beats_random_init_on_clustered_data():
    rng = np.random.default_rng(4)
    x, _ = clustered(rng, 2000, 16, 32, 0.25)

    def objective(c):  # mean best cosine similarity
        return float(np.mean(np.max(x.astype(np.float64) @ np.asarray(c, np.float64).T, axis=1)))

    fitted = objective(kmeans(x, 16, iters=4, seed=0))
    random_init = np.mean([objective(x[np.random.default_rng(s).choice(2000, 16, replace=False)])
                           for s in range(5)])
    assert fitted > random_init + 0.05, (fitted, random_init)


def test_assign_matches_argmax_reference():
    rng = np.random.default_rng(5)
    x = unit(rng.normal(size=(777, 16))).astype(np.float32)
    c = unit(rng.normal(size=(33, 16))).astype(np.float32)
    want = np.argmax(x.astype(np.float64) @ c.astype(np.float64).T, axis=1)
    got = np.asarray(assign(x, c, chunk_size=100))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 10, 1000, 123_456, 10_000_000])
def test_num_centroids_formula(n):
    k = num_centroids(n)
    target = 16 * math.sqrt(n)
    assert k & (k - 1) == 0 and k <= target < 2 * k


def test_num_centroids_rejects_zero():
    with pytest.raises(ValueError):
        num_centroids(0)
