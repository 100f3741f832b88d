"""jaxir.ops.scores: per-query normalisation and teacher ensembles vs float64 NumPy references."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops import scores

TOL = dict(rtol=1e-5, atol=1e-5)


def ref_minmax(s, mask):
    out = np.zeros_like(s)
    for b in range(s.shape[0]):
        v = s[b][mask[b]]
        if len(v) and v.max() > v.min():
            out[b][mask[b]] = (v - v.min()) / (v.max() - v.min())
    return out


def ref_zscore(s, mask):
    out = np.zeros_like(s)
    for b in range(s.shape[0]):
        v = s[b][mask[b]]
        if len(v) and v.std() > 0:
            out[b][mask[b]] = (v - v.mean()) / v.std()
    return out


def random_case(seed, shape=(5, 7)):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=4.0, size=shape) + rng.normal(size=(shape[0], 1)) * 10
    mask = rng.random(shape) < 0.7
    mask[0] = False  # nothing valid
    mask[1] = False
    mask[1, 2] = True  # a single valid candidate
    s[2] = 3.25  # a constant row
    mask[2, :3] = True
    return s, mask


class ScoresVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_minmax_matches_reference(self):
        s, mask = random_case(201)
        out = self.variant(scores.minmax_normalize)(jnp.asarray(s, jnp.float32), mask=mask)
        np.testing.assert_allclose(out, ref_minmax(s, mask), **TOL)
        valid = np.asarray(out)[mask]
        assert valid.min() >= 0.0 and valid.max() <= 1.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_minmax_without_mask(self):
        s = np.random.default_rng(202).normal(size=(3, 6))
        out = self.variant(scores.minmax_normalize)(jnp.asarray(s, jnp.float32))
        np.testing.assert_allclose(out, ref_minmax(s, np.ones(s.shape, bool)), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zscore_matches_reference(self):
        s, mask = random_case(203)
        out = self.variant(scores.zscore_normalize)(jnp.asarray(s, jnp.float32), mask=mask)
        np.testing.assert_allclose(out, ref_zscore(s, mask), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ensemble_matches_reference(self):
        rng = np.random.default_rng(204)
        dense, bm25 = rng.normal(size=(4, 6)), rng.gamma(2.0, 5.0, size=(4, 6))
        mask = rng.random((4, 6)) < 0.8
        fn = self.variant(functools.partial(
            scores.ensemble_teacher_scores, weights=(1.0, 3.0), scale=30.0, mask=jnp.asarray(mask)
        ))
        out = fn([jnp.asarray(dense, jnp.float32), jnp.asarray(bm25, jnp.float32)])
        expected = 30.0 * (ref_minmax(dense, mask) + 3.0 * ref_minmax(bm25, mask)) / 4.0
        np.testing.assert_allclose(out, expected, **TOL)


def test_minmax_hand_values():
    out = scores.minmax_normalize(jnp.array([[2.0, 4.0, 3.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])


def test_zscore_hand_values():
    out = scores.zscore_normalize(jnp.array([[1.0, 3.0]]))
    np.testing.assert_allclose(out, [[-1.0, 1.0]], rtol=1e-6)


def test_ensemble_defaults_equal_weights_and_zscore():
    rng = np.random.default_rng(205)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    full = np.ones((3, 5), bool)
    out = scores.ensemble_teacher_scores([jnp.asarray(a), jnp.asarray(b)])
    np.testing.assert_allclose(out, 15.0 * (ref_minmax(a, full) + ref_minmax(b, full)), **TOL)
    out_z = scores.ensemble_teacher_scores([jnp.asarray(a)], normalize="zscore", scale=1.0)
    np.testing.assert_allclose(out_z, ref_zscore(a, full), **TOL)
    out_raw = scores.ensemble_teacher_scores([jnp.asarray(a)], normalize="none", scale=2.0)
    np.testing.assert_allclose(out_raw, 2.0 * a, **TOL)


def test_gradients_finite_when_everything_masked_or_constant():
    s = jnp.asarray(np.random.default_rng(206).normal(size=(2, 4)), jnp.float32)
    nothing = jnp.zeros((2, 4), bool)
    for fn in (scores.minmax_normalize, scores.zscore_normalize):
        out = fn(s, mask=nothing)
        np.testing.assert_array_equal(out, 0.0)
        grad = jax.grad(lambda v, f=fn: jnp.sum(f(v, mask=nothing) ** 2))(s)
        chex.assert_tree_all_finite(grad)
        const_grad = jax.grad(lambda v, f=fn: jnp.sum(f(v)))(jnp.ones((2, 4)))
        chex.assert_tree_all_finite(const_grad)


def test_ensemble_rejects_bad_arguments():
    t = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="at least one"):
        scores.ensemble_teacher_scores([])
    with pytest.raises(ValueError, match="2 weights for 1"):
        scores.ensemble_teacher_scores([t], weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="positive sum"):
        scores.ensemble_teacher_scores([t, t], weights=(0.0, 0.0))
    with pytest.raises(ValueError, match="normalize"):
        scores.ensemble_teacher_scores([t], normalize="rank")
    with pytest.raises(AssertionError):
        scores.ensemble_teacher_scores([t, jnp.zeros((2, 4))])
