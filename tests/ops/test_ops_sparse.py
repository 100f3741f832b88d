"""jaxir.ops.sparse against float64 NumPy references, hand-computed cases, jit and gradients."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops import sparse

TOL = dict(rtol=1e-5, atol=1e-6)


def ref_max_pool(x, mask):
    out = np.zeros(x.shape[::2])
    for b in range(x.shape[0]):
        rows = x[b][mask[b].astype(bool)]
        if len(rows):
            out[b] = rows.max(axis=0)
    return out


def ref_flops(w):
    return float(np.sum(np.mean(np.abs(w), axis=0) ** 2))


class SparseVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_log_saturation_matches_reference(self):
        x = np.random.default_rng(101).normal(scale=3.0, size=(4, 7))
        single = self.variant(sparse.log_saturation)
        double = self.variant(functools.partial(sparse.log_saturation, double_log=True))
        expected = np.log1p(np.maximum(x, 0.0))
        np.testing.assert_allclose(single(jnp.asarray(x, jnp.float32)), expected, **TOL)
        np.testing.assert_allclose(double(jnp.asarray(x, jnp.float32)), np.log1p(expected), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_masked_max_pool_matches_reference(self):
        rng = np.random.default_rng(102)
        x = rng.normal(size=(5, 6, 9))
        mask = rng.random((5, 6)) < 0.6
        mask[0] = False  # one fully padded row
        mask[1, 3] = True
        out = self.variant(sparse.masked_max_pool)(jnp.asarray(x, jnp.float32), jnp.asarray(mask))
        np.testing.assert_allclose(out, ref_max_pool(x, mask), **TOL)
        np.testing.assert_array_equal(np.asarray(out[0]), 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sparse_doc_weights_matches_reference(self):
        rng = np.random.default_rng(103)
        logits = rng.normal(scale=2.0, size=(3, 8, 12))
        mask = rng.random((3, 8)) < 0.7
        mask[:, 0] = True
        logits[~mask] = 50.0  # padding must never leak into the max
        special = (0, 5)
        fn = self.variant(
            functools.partial(sparse.sparse_doc_weights, special_token_ids=special, double_log=True)
        )
        out = fn(jnp.asarray(logits, jnp.float32), jnp.asarray(mask.astype(np.int32)))
        expected = np.log1p(np.log1p(np.maximum(ref_max_pool(logits, mask), 0.0)))
        expected[:, list(special)] = 0.0
        np.testing.assert_allclose(out, expected, **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_flops_weight_schedule(self):
        schedule = self.variant(functools.partial(sparse.flops_weight, lam=0.3, warmup_steps=10))
        for step in (0, 4, 9, 10, 500):
            expected = 0.3 * min(1.0, (step + 1) / 10) ** 2
            np.testing.assert_allclose(schedule(jnp.asarray(step)), expected, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_idf_query_vector_counts_distinct_valid_tokens(self):
        rng = np.random.default_rng(104)
        vocab = 11
        ids = rng.integers(0, vocab, size=(4, 9))
        mask = rng.random((4, 9)) < 0.7
        idf = rng.uniform(0.5, 3.0, size=vocab)
        out = self.variant(sparse.idf_query_vector)(
            jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(idf, jnp.float32)
        )
        expected = np.zeros((4, vocab))
        for b in range(4):
            for t in set(ids[b][mask[b]].tolist()):
                expected[b, t] = idf[t]
        np.testing.assert_allclose(out, expected, **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_topk_prune_keeps_largest(self):
        w = np.random.default_rng(105).random((4, 10))
        out = np.asarray(self.variant(functools.partial(sparse.topk_prune, k=3))(jnp.asarray(w)))
        expected = np.zeros_like(w)
        for b in range(4):
            top = np.argsort(-w[b])[:3]
            expected[b, top] = w[b, top]
        np.testing.assert_allclose(out, expected, **TOL)
        assert (np.count_nonzero(out, axis=1) == 3).all()

    @chex.variants(with_jit=True, without_jit=True)
    def test_scores_match_reference(self):
        rng = np.random.default_rng(106)
        q, d, dn = rng.random((3, 13)), rng.random((5, 13)), rng.random((3, 4, 13))
        f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
        pairs = self.variant(sparse.sparse_scores)(f32(q), f32(d))
        nway = self.variant(sparse.sparse_scores_nway)(f32(q), f32(dn))
        np.testing.assert_allclose(pairs, q @ d.T, **TOL)
        np.testing.assert_allclose(nway, np.einsum("bv,bnv->bn", q, dn), **TOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_inbatch_scores_put_own_candidates_first(self):
        rng = np.random.default_rng(107)
        b, n = 3, 4
        q, dn = rng.random((b, 13)), rng.random((b, n, 13))
        out = np.asarray(self.variant(sparse.sparse_scores_inbatch)(jnp.asarray(q, jnp.float32),
                                                                    jnp.asarray(dn, jnp.float32)))
        assert out.shape == (b, b * n)
        for i in range(b):  # own block, then the following queries' blocks, wrapping around
            order = [(i + k) % b for k in range(b)]
            want = np.concatenate([dn[j] @ q[i] for j in order])
            np.testing.assert_allclose(out[i], want, **TOL)
        cols = sparse.inbatch_columns(b, n)
        assert all(sorted(row) == list(range(b * n)) for row in cols.tolist())


def test_log_saturation_hand_values():
    out = sparse.log_saturation(jnp.array([-1.0, 0.0, math.e - 1.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0], rtol=1e-6)


def test_masked_max_pool_gradient_finite_when_all_masked():
    x = jnp.asarray(np.random.default_rng(107).normal(size=(2, 3, 4)), jnp.float32)
    mask = jnp.zeros((2, 3), bool)
    grad = jax.grad(lambda v: jnp.sum(sparse.sparse_doc_weights(v, mask)))(x)
    chex.assert_tree_all_finite(grad)
    np.testing.assert_array_equal(grad, 0.0)


def test_flops_reference_and_hand_value():
    w = np.random.default_rng(108).normal(size=(6, 9))
    np.testing.assert_allclose(sparse.flops(jnp.asarray(w, jnp.float32)), ref_flops(w), **TOL)
    # mean_b |w| = [2, 1] -> 2^2 + 1^2.
    np.testing.assert_allclose(sparse.flops(jnp.array([[1.0, -2.0], [3.0, 0.0]])), 5.0)


def test_flops_weight_without_warmup_is_constant():
    np.testing.assert_allclose(sparse.flops_weight(0, lam=0.7, warmup_steps=0), 0.7, rtol=1e-6)


def test_idf_weights_hand_computation():
    n = 10
    df = np.array([0, 1, 5, 10])
    expected = [math.log(1 + (n - f + 0.5) / (f + 0.5)) for f in df]
    np.testing.assert_allclose(sparse.idf_weights(jnp.asarray(df), n, unseen_idf=None), expected,
                               rtol=1e-6)
    default = np.asarray(sparse.idf_weights(jnp.asarray(df), n))
    np.testing.assert_allclose(default, [0.0] + expected[1:], rtol=1e-6)
    np.testing.assert_allclose(sparse.idf_weights(jnp.asarray(df), n, unseen_idf=1.0)[0], 1.0)


def test_idf_aware_flops_modes():
    rng = np.random.default_rng(109)
    w, idf = rng.random((5, 8)), rng.uniform(0.1, 4.0, size=8)
    wj, idfj = jnp.asarray(w, jnp.float32), jnp.asarray(idf, jnp.float32)
    np.testing.assert_allclose(sparse.idf_aware_flops(wj, idfj), ref_flops(w), **TOL)
    np.testing.assert_allclose(
        sparse.idf_aware_flops(wj, idfj, mode="uniform"), ref_flops(w * idf), **TOL
    )
    # The uniform penalty's gradient scales with idf^2; the idf-aware one ignores idf.
    g_aware = jax.grad(lambda v: sparse.idf_aware_flops(v, idfj))(wj)
    g_uniform = jax.grad(lambda v: sparse.idf_aware_flops(v, idfj, mode="uniform"))(wj)
    np.testing.assert_allclose(g_uniform, g_aware * idf**2, rtol=1e-4)
    with pytest.raises(ValueError, match="mode"):
        sparse.idf_aware_flops(wj, idfj, mode="bogus")


def test_topk_prune_large_k_and_gradient():
    w = jnp.asarray(np.random.default_rng(110).random((2, 5)), jnp.float32)
    np.testing.assert_array_equal(sparse.topk_prune(w, 5), w)
    grad = jax.grad(lambda v: jnp.sum(sparse.topk_prune(v, 2)))(w)
    kept = np.asarray(sparse.topk_prune(w, 2)) != 0
    np.testing.assert_array_equal(np.asarray(grad), kept.astype(np.float32))


def test_shape_errors():
    with pytest.raises(AssertionError):
        sparse.masked_max_pool(jnp.zeros((2, 3, 4)), jnp.ones((2, 4)))
    with pytest.raises(AssertionError):
        sparse.sparse_scores(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_top_k_cut_on_float32_keeps_the_exact_float64_ranking():
    """Sums that differ below float32 precision: the float32 cut keeps them all as candidates
    and the float64 sums rank them (ties by index)."""
    from jaxir.index.inverted import _top_k_nonzero

    rng = np.random.default_rng(0)
    scores = np.zeros(500)
    scores[rng.choice(500, 300, replace=False)] = rng.random(300)
    base = 0.75
    close = [17, 3, 250, 99]  # equal in float32, ordered in float64
    for i, d in enumerate(close):
        scores[d] = base + 1e-12 * (4 - i) + 1.0
    for k in (1, 3, 4, 10, 400, 600):
        got, got_scores = _top_k_nonzero(scores, k)
        nz = np.flatnonzero(scores)
        want = nz[np.lexsort((nz, -scores[nz]))][:k]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_scores, scores[want])
    assert list(_top_k_nonzero(scores, 4)[0]) == close
