"""jaxir.ops.losses against float64 NumPy references, hand cases, jit and masked gradients."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops import losses

TOL = dict(rtol=1e-5, atol=1e-6)


def ref_log_softmax(x):
    x = x - x.max()
    return x - np.log(np.sum(np.exp(x)))


def ref_kl(student, teacher, mask, tau):
    rows = []
    for b in range(student.shape[0]):
        m = mask[b]
        if m.any():
            lps, lpt = ref_log_softmax(student[b][m] / tau), ref_log_softmax(teacher[b][m] / tau)
            rows.append(np.sum(np.exp(lpt) * (lpt - lps)))
    return float(np.mean(rows)) if rows else 0.0


def ref_infonce(s, labels, mask):
    rows = []
    for b in range(s.shape[0]):
        if 0 <= labels[b] < s.shape[1] and mask[b, labels[b]]:
            idx = np.flatnonzero(mask[b])
            logp = ref_log_softmax(s[b][idx])
            rows.append(-logp[np.flatnonzero(idx == labels[b])[0]])
    return float(np.mean(rows)) if rows else 0.0


def f32(x):
    return jnp.asarray(x, jnp.float32)


class LossVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_kl_matches_reference(self):
        rng = np.random.default_rng(301)
        student, teacher = rng.normal(size=(5, 8)) * 3, rng.normal(size=(5, 8)) * 3
        mask = rng.random((5, 8)) < 0.7
        mask[0] = False
        fn = self.variant(functools.partial(losses.kl_distillation, temperature=2.0, mask=mask))
        np.testing.assert_allclose(
            fn(f32(student), f32(teacher)), ref_kl(student, teacher, mask, 2.0), **TOL
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_margin_mse_matches_reference(self):
        sp, sn, tp, tn = np.random.default_rng(302).normal(size=(4, 6))
        out = self.variant(losses.margin_mse)(f32(sp), f32(sn), f32(tp), f32(tn))
        np.testing.assert_allclose(out, np.mean(((sp - sn) - (tp - tn)) ** 2), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_margin_mse_nway_matches_reference(self):
        rng = np.random.default_rng(303)
        s, t = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
        mask = rng.random((4, 5)) < 0.7
        mask[0, 0] = False  # positive missing: the whole row drops out
        mask[1, 0] = True
        terms = [((s[b, 0] - s[b, j]) - (t[b, 0] - t[b, j])) ** 2
                 for b in range(4) for j in range(1, 5) if mask[b, 0] and mask[b, j]]
        fn = self.variant(functools.partial(losses.margin_mse_nway, mask=mask))
        np.testing.assert_allclose(fn(f32(s), f32(t)), np.mean(terms), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_infonce_matches_reference(self):
        rng = np.random.default_rng(304)
        s = rng.normal(size=(6, 7)) * 4
        labels = rng.integers(0, 7, size=6)
        mask = rng.random((6, 7)) < 0.6
        mask[np.arange(6), labels] = True
        mask[0, labels[0]] = False  # label masked: row skipped
        fn = self.variant(functools.partial(losses.infonce, mask=mask))
        np.testing.assert_allclose(fn(f32(s), labels), ref_infonce(s, labels, mask), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_inbatch_cross_entropy_matches_reference(self):
        rng = np.random.default_rng(305)
        n_q, group = 3, 4
        s = rng.normal(size=(n_q, n_q * group)) * 2
        mask = np.ones(s.shape, bool)
        for i in range(n_q):
            mask[i, i * group + 1:(i + 1) * group] = False  # own hard negatives out
        labels = np.arange(n_q) * group
        fn = self.variant(functools.partial(losses.inbatch_cross_entropy, group_size=group))
        np.testing.assert_allclose(fn(f32(s)), ref_infonce(s, labels, mask), **TOL)
        keep = self.variant(functools.partial(
            losses.inbatch_cross_entropy, group_size=group, exclude_own_negatives=False))
        np.testing.assert_allclose(
            keep(f32(s)), ref_infonce(s, labels, np.ones(s.shape, bool)), **TOL
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_localized_contrastive_matches_reference(self):
        s = np.random.default_rng(306).normal(size=(4, 8))
        out = self.variant(losses.localized_contrastive)(f32(s))
        np.testing.assert_allclose(out, ref_infonce(s, np.zeros(4, int), np.ones(s.shape, bool)),
                                   **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_token_cross_entropy_matches_reference(self):
        rng = np.random.default_rng(307)
        logits = rng.normal(size=(3, 5, 11)) * 2
        targets = rng.integers(0, 11, size=(3, 5))
        mask = rng.random((3, 5)) < 0.6
        mask[0, 0] = True
        terms = [-ref_log_softmax(logits[b, l])[targets[b, l]]
                 for b in range(3) for l in range(5) if mask[b, l]]
        out = self.variant(losses.token_cross_entropy)(f32(logits), targets, mask)
        np.testing.assert_allclose(out, np.mean(terms), **TOL)


def test_kl_nonnegative_and_zero_for_equal_inputs():
    rng = np.random.default_rng(308)
    for _ in range(5):
        s, t = f32(rng.normal(size=(4, 6)) * 5), f32(rng.normal(size=(4, 6)) * 5)
        assert float(losses.kl_distillation(s, t)) >= 0.0
    s = f32(rng.normal(size=(4, 6)))
    np.testing.assert_allclose(losses.kl_distillation(s, s, temperature=0.5), 0.0, atol=1e-6)
    # Shifting a row by a constant does not change its softmax.
    np.testing.assert_allclose(losses.kl_distillation(s + 7.0, s), 0.0, atol=1e-5)


def test_hand_computed_values():
    # Uniform student over 2 items, teacher [0.75, 0.25]: KL = .75 ln 1.5 + .25 ln .5.
    teacher = jnp.log(jnp.array([[0.75, 0.25]]))
    kl = losses.kl_distillation(jnp.zeros((1, 2)), teacher)
    np.testing.assert_allclose(kl, 0.75 * math.log(1.5) + 0.25 * math.log(0.5), rtol=1e-6)
    # Two equal scores: -ln(1/2).
    np.testing.assert_allclose(losses.localized_contrastive(jnp.zeros((1, 2))), math.log(2.0),
                               rtol=1e-6)
    np.testing.assert_allclose(
        losses.margin_mse(jnp.array([3.0]), jnp.array([1.0]), jnp.array([5.0]), jnp.array([4.0])),
        1.0,
    )
    # Group size 2, two queries: query 0 sees columns {0, 2, 3}, all scores 0 -> ln 3.
    np.testing.assert_allclose(losses.inbatch_cross_entropy(jnp.zeros((2, 4)), group_size=2),
                               math.log(3.0), rtol=1e-6)


def test_losses_zero_with_finite_gradients_when_all_masked():
    rng = np.random.default_rng(309)
    s, t = f32(rng.normal(size=(3, 4))), f32(rng.normal(size=(3, 4)))
    none = jnp.zeros((3, 4), bool)
    labels = jnp.array([0, 1, 2])
    cases = {
        "kl": lambda v: losses.kl_distillation(v, t, mask=none),
        "nway": lambda v: losses.margin_mse_nway(v, t, mask=none),
        "infonce": lambda v: losses.infonce(v, labels, mask=none),
        "lce": lambda v: losses.localized_contrastive(v, mask=none),
        "tokens": lambda v: losses.token_cross_entropy(v[None], jnp.zeros((1, 3), int),
                                                       jnp.zeros((1, 3), bool)),
    }
    for name, fn in cases.items():
        value, grad = jax.jit(jax.value_and_grad(fn))(s)
        assert float(value) == 0.0, name
        chex.assert_tree_all_finite(grad)
        np.testing.assert_array_equal(grad, 0.0, err_msg=name)


def test_teacher_gets_no_gradient():
    rng = np.random.default_rng(310)
    s, t = f32(rng.normal(size=(2, 5))), f32(rng.normal(size=(2, 5)))
    grad_t = jax.grad(lambda v: losses.kl_distillation(s, v))(t)
    np.testing.assert_array_equal(grad_t, 0.0)
    grad_s = jax.grad(lambda v: losses.kl_distillation(v, t))(s)
    assert np.abs(np.asarray(grad_s)).sum() > 0


def test_inbatch_shape_error_names_shape():
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        losses.inbatch_cross_entropy(jnp.zeros((2, 5)), group_size=2)


def test_masked_numpy_float64_scores_stay_finite():
    """NumPy float64 in (jax computes float32): the masked floor is float32's, not an overflowed
    float64 one (-inf, which turned a masked one-hot product into NaN)."""
    scores, mask = np.array([[2.0, 0.0], [1.0, 0.0]]), np.array([[1, 0], [1, 1]])
    want = float(losses.infonce(jnp.asarray(scores, jnp.float32), jnp.zeros(2, jnp.int32), mask=mask))
    got = float(losses.infonce(scores, np.zeros(2, np.int64), mask=mask))
    assert math.isfinite(got) and got == pytest.approx(want, rel=1e-6)
    assert float(losses.kl_distillation(scores, scores[::-1], mask=mask)) >= 0.0
