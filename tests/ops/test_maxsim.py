"""MaxSim kernels vs a float64 NumPy reference (padding, fully masked docs, jit and non-jit)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops.maxsim import maxsim_all_pairs, maxsim_nway, maxsim_pairwise


def ref_maxsim(q, q_mask, d, d_mask):
    """One (query, doc) pair in float64 with explicit loops over query tokens."""
    q, d = np.asarray(q, np.float64), np.asarray(d, np.float64)
    total = 0.0
    valid_docs = d[np.asarray(d_mask, bool)]
    for i in range(len(q)):
        if q_mask[i] and len(valid_docs):
            total += max(float(q[i] @ dj) for dj in valid_docs)
    return total


def rand_masks(rng, shape):
    """Random 0/1 masks with a valid prefix (padding at the end), some rows fully masked."""
    lens = rng.integers(0, shape[-1] + 1, size=shape[:-1])
    return (np.arange(shape[-1]) < lens[..., None]).astype(np.int32)


def unit(rng, shape):
    x = rng.normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class MaxSimTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_pairwise_matches_reference(self):
        rng = np.random.default_rng(0)
        q, d = unit(rng, (2, 3, 5, 16)), unit(rng, (2, 3, 7, 16))
        qm, dm = rand_masks(rng, (2, 3, 5)), rand_masks(rng, (2, 3, 7))
        dm[0, 0] = 0  # a fully masked document
        got = np.asarray(self.variant(maxsim_pairwise)(q, qm, d, dm))
        want = np.array([[ref_maxsim(q[a, b], qm[a, b], d[a, b], dm[a, b]) for b in range(3)]
                         for a in range(2)])
        assert got.shape == (2, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert got[0, 0] == 0.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_pairs_matches_reference(self):
        rng = np.random.default_rng(1)
        q, d = unit(rng, (4, 6, 8)), unit(rng, (5, 9, 8))
        qm, dm = rand_masks(rng, (4, 6)), rand_masks(rng, (5, 9))
        dm[2] = 0
        got = np.asarray(self.variant(maxsim_all_pairs)(q, qm, d, dm))
        want = np.array([[ref_maxsim(q[a], qm[a], d[b], dm[b]) for b in range(5)]
                         for a in range(4)])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got[:, 2], 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_nway_matches_reference(self):
        rng = np.random.default_rng(2)
        q, d = unit(rng, (3, 6, 8)), unit(rng, (3, 4, 10, 8))
        qm, dm = rand_masks(rng, (3, 6)), rand_masks(rng, (3, 4, 10))
        got = np.asarray(self.variant(maxsim_nway)(q, qm, d, dm))
        want = np.array([[ref_maxsim(q[b], qm[b], d[b, n], dm[b, n]) for n in range(4)]
                         for b in range(3)])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_none_masks_mean_all_valid(self):
        rng = np.random.default_rng(3)
        q, d = unit(rng, (2, 4, 8)), unit(rng, (2, 5, 8))
        got = np.asarray(self.variant(maxsim_pairwise)(q, None, d, None))
        ones_q, ones_d = np.ones((4,)), np.ones((5,))
        want = [ref_maxsim(q[b], ones_q, d[b], ones_d) for b in range(2)]
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_fully_masked_doc_gives_zero_score_and_finite_grads():
    rng = np.random.default_rng(4)
    q, d = unit(rng, (3, 4, 8)), unit(rng, (3, 6, 8))
    dm = np.ones((3, 6), bool)
    dm[1] = False

    def loss(q, d):
        return jnp.sum(maxsim_all_pairs(q, None, d, dm))

    scores = maxsim_all_pairs(q, None, d, dm)
    gq, gd = jax.grad(loss, argnums=(0, 1))(q, d)
    chex.assert_tree_all_finite((scores, gq, gd))
    np.testing.assert_array_equal(np.asarray(scores)[:, 1], 0.0)
    np.testing.assert_array_equal(np.asarray(gd)[1], 0.0)  # masked doc gets no gradient


def test_bf16_inputs_give_float32_scores_close_to_reference():
    rng = np.random.default_rng(5)
    q, d = unit(rng, (2, 8, 32)), unit(rng, (3, 12, 32))
    got = maxsim_all_pairs(jnp.asarray(q, jnp.bfloat16), None, jnp.asarray(d, jnp.bfloat16), None)
    assert got.dtype == jnp.float32
    want = np.array([[ref_maxsim(q[a], np.ones(8), d[b], np.ones(12)) for b in range(3)]
                     for a in range(2)])
    np.testing.assert_allclose(np.asarray(got), want, atol=0.1)


def test_shape_mismatch_raises():
    q, d = jnp.zeros((2, 4, 8)), jnp.zeros((2, 5, 6))
    with pytest.raises(AssertionError):
        maxsim_pairwise(q, None, d, None)
    with pytest.raises(AssertionError):
        maxsim_nway(q, None, jnp.zeros((3, 2, 5, 8)), None)
    with pytest.raises(AssertionError):
        maxsim_all_pairs(q, jnp.ones((2, 3)), jnp.zeros((2, 5, 8)), None)
