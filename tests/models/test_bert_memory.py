"""A layer attending to precomputed keys/values besides its own rows (`memory`, what MICE's
interaction layers use) is the same layer run over the joint rows [own; memory source] with the
memory rows' outputs discarded; `layer_key_values` gives those keys/values from the layer's own
K/V projections."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.models.bert import (BertConfig, TransformerLayer, attention_bias, init_params, layer_key_values,
                               merge_heads, split_heads)

CFG = BertConfig.tiny()


def _inputs(b=3, t=5, lm=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t, CFG.hidden_size)).astype(np.float32)
    m = rng.normal(size=(b, lm, CFG.hidden_size)).astype(np.float32)
    x_mask, m_mask = np.ones((b, t), np.int32), np.ones((b, lm), np.int32)
    x_mask[1, 3:], m_mask[0, 4:], m_mask[2, 1:] = 0, 0, 0  # padded keys in both parts
    return x, m, x_mask, m_mask


@pytest.mark.parametrize("own_mask", ["padding", "query_key"])
def test_memory_equals_the_layer_over_the_joint_rows(own_mask):
    params = init_params(CFG, jax.random.PRNGKey(0))["layer_1"]
    x, m, x_mask, m_mask = _inputs()
    b, t, lm = x.shape[0], x.shape[1], m.shape[1]
    keys = np.concatenate([x_mask, m_mask], 1)
    if own_mask == "padding":  # own rows: (B, T) padding mask; joint: (B, T + Lm)
        own, joint = x_mask, keys
    else:  # own rows: a (B, T, T) query-key mask (causal here); joint rows: the same block + memory
        own = np.tril(np.ones((t, t), np.int32))[None] * x_mask[:, None, :]
        joint = np.concatenate([np.concatenate([own, np.broadcast_to(m_mask[:, None, :], (b, t, lm))], 2),
                                np.broadcast_to(keys[:, None, :], (b, lm, t + lm))], 1)
    layer = TransformerLayer(CFG)
    ref = layer.apply({"params": params}, jnp.concatenate([x, m], 1), attention_bias(joint, jnp.float32))[:, :t]
    memory = (*layer_key_values(CFG, params, m), attention_bias(m_mask, jnp.float32))
    got = layer.apply({"params": params}, x, attention_bias(own, jnp.float32), True, memory)
    assert got.shape == (b, t, CFG.hidden_size)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-6, atol=1e-6)
    # the memory matters: without it (or with other memory rows) the rows come out otherwise
    alone = layer.apply({"params": params}, x, attention_bias(own, jnp.float32))
    assert np.abs(np.asarray(alone) - np.asarray(ref)).max() > 1e-2


def test_key_values_are_the_layers_own_projection():
    params = init_params(CFG, jax.random.PRNGKey(1))["layer_0"]
    _, m, _, _ = _inputs(seed=1)
    k, v = layer_key_values(CFG, params, m)
    qkv = m @ params["attention"]["qkv"]["kernel"] + params["attention"]["qkv"]["bias"]
    h = CFG.hidden_size
    assert k.shape == v.shape == (m.shape[0], CFG.num_heads, m.shape[1], h // CFG.num_heads)
    np.testing.assert_allclose(np.asarray(merge_heads(k)), qkv[..., h:2 * h], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(merge_heads(v)), qkv[..., 2 * h:], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(split_heads(merge_heads(k), CFG.num_heads)), np.asarray(k))


def test_memory_leaves_the_param_tree_alone():
    """The layer's params are the same with and without memory (the encoder's tree: the real
    weights load as before, tests/models/test_bert_parity.py)."""
    x, m, x_mask, m_mask = _inputs()
    plain = TransformerLayer(CFG).init(jax.random.PRNGKey(2), x, attention_bias(x_mask, jnp.float32))
    k = jnp.zeros((x.shape[0], CFG.num_heads, m.shape[1], CFG.hidden_size // CFG.num_heads))
    with_memory = TransformerLayer(CFG).init(jax.random.PRNGKey(2), x, attention_bias(x_mask, jnp.float32), True,
                                             (k, k, attention_bias(m_mask, jnp.float32)))
    assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(with_memory)
    assert jax.tree_util.tree_map(jnp.shape, plain) == jax.tree_util.tree_map(jnp.shape, with_memory)
    assert sorted(plain["params"]["attention"]) == ["out", "qkv"]
