"""jaxir.ops.masks: loop references for every mask builder, MICE variants by segment pair."""
import functools

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.ops import masks


def ref_pair_mask(seg, valid, allowed):
    b, n = seg.shape
    out = np.zeros((b, n, n), bool)
    for k in range(b):
        for i in range(n):
            for j in range(n):
                out[k, i, j] = valid[k, i] and valid[k, j] and allowed(seg[k, i], seg[k, j])
    return out


def cross_encoder_batch(seed):
    """Segments like [CLS] q.. [SEP] d.. [SEP] [PAD]..: 0 for the query side, 1 for the doc side."""
    rng = np.random.default_rng(seed)
    seg, valid = np.zeros((4, 12), np.int32), np.zeros((4, 12), bool)
    for k in range(4):
        q_len, d_len = rng.integers(2, 5), rng.integers(1, 6)
        seg[k, q_len:] = 1
        valid[k, :q_len + d_len] = True
    return seg, valid


class MaskVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_attention_mask_2d(self):
        valid = np.random.default_rng(401).random((3, 6)) < 0.6
        both = self.variant(masks.attention_mask_2d)(jnp.asarray(valid.astype(np.int32)))
        keys = self.variant(functools.partial(masks.attention_mask_2d, mask_queries=False))(valid)
        everything = ref_pair_mask(np.zeros((3, 6)), valid, lambda a, b: True)
        np.testing.assert_array_equal(both, everything)
        expected_keys = np.broadcast_to(valid[:, None, :], (3, 6, 6))
        np.testing.assert_array_equal(keys, expected_keys)

    @chex.variants(with_jit=True, without_jit=True)
    def test_block_diagonal_mask(self):
        rng = np.random.default_rng(402)
        seg = rng.integers(0, 3, size=(3, 7))
        valid = rng.random((3, 7)) < 0.8
        out = self.variant(masks.block_diagonal_mask)(jnp.asarray(seg), jnp.asarray(valid))
        np.testing.assert_array_equal(out, ref_pair_mask(seg, valid, lambda a, b: a == b))

    @chex.variants(with_jit=True, without_jit=True)
    def test_mice_variants_by_segment_pair(self):
        seg, valid = cross_encoder_batch(403)
        rules = {
            "full": lambda a, b: True,
            "block_diagonal": lambda a, b: a == b,
            "query_to_doc": lambda a, b: a == 0 or b == 1,
            "query_to_doc_no_qq": lambda a, b: b == 1,
        }
        assert set(rules) == set(masks.MICE_VARIANTS)
        for name, rule in rules.items():
            fn = self.variant(functools.partial(masks.mice_masks, variant=name))
            out = fn(jnp.asarray(seg), jnp.asarray(valid))
            np.testing.assert_array_equal(out, ref_pair_mask(seg, valid, rule), err_msg=name)

    @chex.variants(with_jit=True, without_jit=True)
    def test_colbert_query_mask(self):
        mask_id = 103
        ids = np.array([[101, 1, 7, 8, 102, mask_id, mask_id],
                        [101, 1, 9, 102, mask_id, mask_id, mask_id]])
        fn = self.variant(
            functools.partial(masks.mask_queries_to_nonmask_tokens, mask_token_id=mask_id)
        )
        out = np.asarray(fn(jnp.asarray(ids)))
        for k in range(2):
            for i in range(7):  # every row, [MASK] rows included, sees exactly the real tokens
                np.testing.assert_array_equal(out[k, i], ids[k] != mask_id)


def test_padding_and_length_masks():
    rng = np.random.default_rng(404)
    lengths = rng.integers(0, 6, size=5)
    expected = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(masks.length_mask(jnp.asarray(lengths), max_len=6), expected)
    ids = np.where(expected, rng.integers(1, 50, size=(5, 6)), 0)
    np.testing.assert_array_equal(masks.padding_mask(jnp.asarray(ids), pad_id=0), expected)
    np.testing.assert_array_equal(masks.padding_mask(jnp.asarray(ids + 1), pad_id=1), expected)


def test_causal_mask_hand_case():
    expected = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
    np.testing.assert_array_equal(masks.causal_mask(3), expected)


def test_mice_hand_case():
    # [CLS] q [SEP] | d [SEP] [PAD]
    seg = jnp.array([[0, 0, 0, 1, 1, 1]])
    valid = jnp.array([[1, 1, 1, 1, 1, 0]])
    out = np.asarray(masks.mice_masks(seg, valid, variant="query_to_doc"))[0].astype(int)
    expected = np.array([
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ])
    np.testing.assert_array_equal(out, expected)


def test_segment_pair_mask_custom_table():
    seg, valid = cross_encoder_batch(405)
    allowed = ((False, False), (True, False))  # doc attends to query only
    out = masks.segment_pair_mask(jnp.asarray(seg), jnp.asarray(valid), allowed=allowed)
    np.testing.assert_array_equal(out, ref_pair_mask(seg, valid, lambda a, b: a == 1 and b == 0))


def test_unknown_mice_variant_raises():
    with pytest.raises(ValueError, match="bogus"):
        masks.mice_masks(jnp.zeros((1, 3), int), jnp.ones((1, 3)), variant="bogus")
