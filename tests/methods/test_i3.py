"""I³: the new layers against a float64 NumPy reference, the passage tower's pieces, the loss,
and the passage tower sharded over 8 devices equal to one device."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.methods.i3 import I3Model
from jaxir.methods.i3_config import I3Config
from jaxir.models.bert import BertConfig, attention_bias
from jaxir.models.decoder import CrossAttention, DecoderLayer

CFG = BertConfig.tiny()


def f64(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def ref_dense(p, x):
    return x @ p["kernel"] + p["bias"]


def ref_ln(p, x, eps=CFG.layer_norm_eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def ref_softmax(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def ref_heads(x, nh):
    b, t, h = x.shape
    return x.reshape(b, t, nh, h // nh).transpose(0, 2, 1, 3)


def ref_merge(x):
    b, nh, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, nh * d)


def ref_self_attention(p, x, key_mask):
    h, nh = x.shape[-1], CFG.num_heads
    qkv = ref_dense(p["qkv"], x)
    q, k, v = (ref_heads(qkv[..., i * h:(i + 1) * h], nh) for i in range(3))
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(h // nh) + np.where(key_mask[:, None, None, :], 0, -1e30)
    return ref_dense(p["out"], ref_merge(ref_softmax(s) @ v))


def ref_cross_attention(p, x, memory):
    h, nh = x.shape[-1], CFG.num_heads
    q = ref_heads(ref_dense(p["query"], x), nh)
    kv = ref_dense(p["key_value"], memory)
    k, v = ref_heads(kv[..., :h], nh), ref_heads(kv[..., h:], nh)
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(h // nh)
    return ref_dense(p["out"], ref_merge(ref_softmax(s) @ v))


def ref_gelu(x):
    from scipy.special import erf  # noqa: F401 - scipy ships with jax

    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def ref_ffn_block(p, x):
    y = ref_dense(p["output"], ref_gelu(ref_dense(p["intermediate"], x)))
    return ref_ln(p["output_norm"], x + y)


def ref_decoder(p, x, key_mask, memory):
    x = ref_ln(p["attention_norm"], x + ref_self_attention(p["attention"], x, key_mask))
    x = ref_ln(p["cross_attention_norm"], x + ref_cross_attention(p["cross_attention"], x, memory))
    return ref_ffn_block(p, x)


def ref_encoder_layer(p, x, key_mask):
    x = ref_ln(p["attention_norm"], x + ref_self_attention(p["attention"], x, key_mask))
    return ref_ffn_block(p, x)


@pytest.mark.parametrize("seed", [0, 1])
def test_decoder_layer_equals_float64_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 7, CFG.hidden_size)).astype(np.float32)
    memory = rng.normal(size=(3, 2, CFG.hidden_size)).astype(np.float32)
    key_mask = np.ones((3, 7), bool)
    key_mask[1, 5:] = False
    layer = DecoderLayer(CFG)
    params = layer.init(jax.random.PRNGKey(seed), x, attention_bias(key_mask, jnp.float32), memory)["params"]
    params = jax.tree_util.tree_map(lambda a: a + 0.05 * rng.normal(size=a.shape).astype(np.float32), params)
    got = layer.apply({"params": params}, x, attention_bias(key_mask, jnp.float32), memory)
    want = ref_decoder(f64(params), x.astype(np.float64), key_mask, memory.astype(np.float64))
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-4)
    chex.assert_shape(got, x.shape)


def test_cross_attention_to_one_slot_returns_that_slots_value_everywhere():
    """One memory slot gets probability 1 from every query: out = W_o (W_v m + b_v) + b_o."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, CFG.hidden_size)).astype(np.float32)
    m = rng.normal(size=(2, 1, CFG.hidden_size)).astype(np.float32)
    attn = CrossAttention(CFG)
    p = attn.init(jax.random.PRNGKey(0), x, m)["params"]
    got = np.asarray(attn.apply({"params": p}, x, m))
    h = CFG.hidden_size
    v = f64(m) @ f64(p["key_value"]["kernel"])[:, h:] + f64(p["key_value"]["bias"])[h:]
    want = ref_dense(f64(p["out"]), v)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_model():
    model = I3Model(I3Config(query_maxlen=8, doc_maxlen=16, batch_size=4), bert_config=CFG)
    params = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(lambda a: a + 0.02 * rng.normal(size=np.shape(a)).astype(np.float32), params)
    return model, params


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_passage_tower_equals_its_float64_composition(tiny_model):
    """pool -> reconstructor over [CLS][MASK]..[SEP] embeddings with memory [p] -> interactor over
    [p, mean(H_q)] -> position 0 -> L2 normalise, recomputed in float64 from the layers."""
    model, params = tiny_model
    rng = np.random.default_rng(5)
    ids = rng.integers(1000, 3000, (3, 16)).astype(np.int32)
    mask = np.ones((3, 16), np.int32)
    mask[2, 9:] = 0
    vec, h_q = model.encode_passages(params, ids, mask)
    from jaxir.models.bert import BertEncoder
    from jaxir.models.heads import mean_pool

    hidden = BertEncoder(CFG).apply({"params": params["passage"]}, ids, mask)
    p = np.asarray(mean_pool(hidden, mask), np.float64)
    emb = np.asarray(BertEncoder(CFG).apply({"params": params["passage"]}, model.reconstructor_ids,
                                            np.zeros_like(model.reconstructor_ids),
                                            method=lambda m, i, t: m.embeddings(i, t)), np.float64)
    emb = np.broadcast_to(emb, (3, *emb.shape[1:]))
    want_h = ref_decoder(f64(params["reconstructor"]), emb, np.ones((3, 8), bool), p[:, None])
    np.testing.assert_allclose(np.asarray(h_q), want_h, atol=5e-5, rtol=1e-4)
    pair = np.stack([p, want_h.mean(1)], 1)
    out = ref_encoder_layer(f64(params["interactor"]), pair, np.ones((3, 2), bool))[:, 0]
    np.testing.assert_allclose(np.asarray(vec), out / np.linalg.norm(out, axis=1, keepdims=True),
                               atol=5e-5, rtol=1e-4)
    assert model.reconstructor_ids[0, 0] == model.tokenizer.cls_token_id
    assert model.reconstructor_ids[0, -1] == model.tokenizer.sep_token_id
    assert (model.reconstructor_ids[0, 1:-1] == model.tokenizer.mask_token_id).all()


def test_passage_vectors_do_not_depend_on_the_query(tiny_model):
    model, params = tiny_model
    texts = ["a passage about cells", "another passage about proteins and genes"]
    alone = model.encode_passage_texts(params, texts, progress=False)
    again = model.encode_passage_texts(params, texts[::-1], progress=False)[::-1]
    np.testing.assert_allclose(alone, again, atol=1e-6)
    chex.assert_shape(alone, (2, CFG.hidden_size))


def batch_of(rng, b=2, n=3, lq=8, ld=16, tok=None):
    q_ids = rng.integers(1000, 3000, (b, lq)).astype(np.int32)
    q_mask = np.ones((b, lq), np.int32)
    if tok is not None:  # [CLS] q [SEP] pad, as the recipe tokenises queries
        q_ids[:, 0], q_ids[:, lq - 3], q_ids[:, lq - 2:] = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
        q_mask[:, lq - 2:] = 0
    return {"q_ids": q_ids, "q_mask": q_mask,
            "d_ids": rng.integers(1000, 3000, (b, n, ld)).astype(np.int32),
            "d_mask": np.ones((b, n, ld), np.int32), "teacher": rng.normal(size=(b, n)).astype(np.float32)}


def ref_rec(logits, targets, mask):
    """float64 mean token CE over the labelled positions."""
    logits = np.asarray(logits, np.float64)
    nll = [np.log(np.exp(logits[i, l] - logits[i, l].max()).sum()) + logits[i, l].max() - logits[i, l, targets[i, l]]
           for i in range(targets.shape[0]) for l in range(targets.shape[1]) if mask[i, l]]
    return np.mean(nll)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_loss_is_weighted_contrastive_plus_reconstruction(tiny_model):
    """alpha * CE + beta * rec, the positive's target being the bare query tokens (no [CLS]/[SEP],
    no padding) with reconstructor position i predicting query token i."""
    model, params = tiny_model
    tok = model.tokenizer
    batch = batch_of(np.random.default_rng(1), tok=tok)
    loss, aux = model.loss_fn(params, batch)
    cfg = model.config
    q = np.asarray(model.encode_queries(params, batch["q_ids"], batch["q_mask"]), np.float64)
    p, h_q = model.encode_passages(params, batch["d_ids"].reshape(6, 16), batch["d_mask"].reshape(6, 16))
    s = q @ np.asarray(p, np.float64).T / cfg.temperature
    ce = np.mean([-(s[i, i * 3] - np.log(np.exp(s[i]).sum())) for i in range(2)])
    logits = model.reconstruction_logits(params, np.asarray(h_q).reshape(2, 3, 8, -1)[:, 0])
    bare = batch["q_ids"][:, 1:5]  # the 4 query tokens between [CLS] and [SEP]
    targets, mask = np.zeros((2, 8), np.int64), np.zeros((2, 8), bool)
    targets[:, :4], mask[:, :4] = bare, True
    rec = ref_rec(logits, targets, mask)
    np.testing.assert_allclose(float(aux["rank"]), cfg.contrastive_weight * ce, rtol=1e-4)
    np.testing.assert_allclose(float(aux["rec"]), rec, rtol=1e-4)
    np.testing.assert_allclose(float(aux["beta"]), cfg.reconstruction_weight, rtol=1e-6)
    np.testing.assert_allclose(float(loss), cfg.contrastive_weight * ce + cfg.reconstruction_weight * rec, rtol=1e-4)


def test_every_passage_reconstructs_its_own_target(tiny_model):
    """With rec_ids/rec_mask [B, N, Lq] every passage (negatives too) is scored against its own
    target; a padded candidate slot (valid False) and padding carry no label."""
    model, params = tiny_model
    rng = np.random.default_rng(4)
    batch = batch_of(rng)
    rec_ids = rng.integers(1000, 3000, (2, 3, 8)).astype(np.int32)
    rec_mask = (rng.random((2, 3, 8)) < 0.7).astype(np.int32)
    valid = np.array([[True, True, True], [True, True, False]])
    _, aux = model.loss_fn(params, {**batch, "rec_ids": rec_ids, "rec_mask": rec_mask, "valid": valid})
    _, h_q = model.encode_passages(params, batch["d_ids"].reshape(6, 16), batch["d_mask"].reshape(6, 16))
    logits = model.reconstruction_logits(params, h_q)
    mask = (rec_mask * valid[..., None]).reshape(6, 8).astype(bool)
    np.testing.assert_allclose(float(aux["rec"]), ref_rec(logits, rec_ids.reshape(6, 8), mask), rtol=1e-4)


def test_beta_decays_tenfold_per_pass_over_the_train_queries(tiny_model):
    model, params = tiny_model
    batch = batch_of(np.random.default_rng(5), tok=model.tokenizer)
    for step, want in ((0, 0.1), (9, 0.1), (10, 0.01), (25, 0.001)):
        _, aux = model.loss_fn(params, batch, step=jnp.int32(step), steps_per_epoch=10)
        np.testing.assert_allclose(float(aux["beta"]), want, rtol=1e-5)
    _, aux = model.loss_fn(params, batch, step=jnp.int32(25))  # unknown pass length: constant
    np.testing.assert_allclose(float(aux["beta"]), 0.1, rtol=1e-6)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_dropout_only_with_a_training_rng(tiny_model):
    """rng None (evaluation) = dropout off; a training rng changes the loss, the same key gives
    the same loss, another key another."""
    _, params = tiny_model
    model = I3Model(I3Config(query_maxlen=8, doc_maxlen=16, dropout=0.1), bert_config=CFG)
    batch = batch_of(np.random.default_rng(6), tok=model.tokenizer)
    off = float(model.loss_fn(params, batch)[0])
    key = jax.random.fold_in(jax.random.PRNGKey(0), 3)
    on = float(model.loss_fn(params, batch, key)[0])
    assert on != off
    assert float(model.loss_fn(params, batch, key)[0]) == on
    assert float(model.loss_fn(params, batch, jax.random.fold_in(jax.random.PRNGKey(0), 4))[0]) != on
    no_rate = I3Model(I3Config(query_maxlen=8, doc_maxlen=16, dropout=0.0), bert_config=CFG)
    assert float(no_rate.loss_fn(params, batch, key)[0]) == off


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_the_plain_baseline_and_distillation_objectives(tiny_model):
    _, params = tiny_model
    rng = np.random.default_rng(2)
    batch = batch_of(rng)
    plain = I3Model(I3Config(query_maxlen=8, doc_maxlen=16, implicit_interaction=False), bert_config=CFG)
    pp = {"query": params["query"], "passage": params["passage"]}
    assert sorted(plain.init(jax.random.PRNGKey(0))) == ["passage", "query"]
    loss, aux = plain.loss_fn(pp, batch)
    assert float(aux["rec"]) == 0.0 and np.isfinite(float(loss))
    distill = I3Model(I3Config(query_maxlen=8, doc_maxlen=16, objective="distill"), bert_config=CFG)
    loss, aux = distill.loss_fn(params, batch)
    assert np.isfinite(float(loss)) and float(aux["rec"]) > 0
    grads = jax.grad(lambda p: distill.loss_fn(p, batch)[0])(params)
    chex.assert_tree_all_finite(grads)
    cross = grads["reconstructor"]["cross_attention"]
    # One memory slot: softmax over one key is 1, so its query/key projections get no gradient
    # and the cross-attention is W_o (W_v p + b_v) + b_o; the values and output learn.
    assert float(jnp.abs(cross["query"]["kernel"]).sum()) == 0.0
    assert float(jnp.abs(cross["key_value"]["kernel"]).sum()) > 0 and float(jnp.abs(cross["out"]["kernel"]).sum()) > 0


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_sharded_passage_tower_equals_single_device(tiny_model):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    model, params = tiny_model
    devices = jax.devices()
    assert len(devices) == 8, "tests run with 8 fake CPU devices (conftest)"
    rng = np.random.default_rng(7)
    ids = rng.integers(1000, 3000, (8, 16)).astype(np.int32)
    mask = np.ones((8, 16), np.int32)
    mask[::3, 10:] = 0
    single = np.asarray(jax.jit(lambda p, i, m: model.encode_passages(p, i, m)[0])(params, ids, mask))
    mesh = Mesh(np.asarray(devices), ("data",))
    rows, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    fn = jax.jit(lambda p, i, m: model.encode_passages(p, i, m)[0], in_shardings=(rep, rows, rows),
                 out_shardings=rows)
    sharded = fn(params, jax.device_put(ids, rows), jax.device_put(mask, rows))
    assert sharded.sharding.spec == P("data")
    np.testing.assert_allclose(np.asarray(sharded), single, atol=1e-5)


REAL_TEXTS = [
    "Alterations of the architecture of cerebral white matter in the developing human brain can affect "
    "cortical development and result in functional disabilities.",
    "Mitochondria are the powerhouse of the cell and produce ATP through oxidative phosphorylation.",
    "The stock market fell sharply today after the central bank raised interest rates.",
    "Vitamin D deficiency is associated with an increased risk of fractures in older adults.",
    "Fever is a raised body temperature, most often caused by an infection.",
    "Regular aerobic exercise lowers resting blood pressure in adults with hypertension.",
]


def test_untrained_i3_starts_as_the_plain_encoder_on_minilm():
    """The identity interactor: on real MiniLM weights and real texts the untrained I³ passage
    vector has cosine >= 0.999 with the plain dual encoder's; the earlier start (a copy of the
    last layer) does not (docs/results-log.md: 0.38 on SciFact)."""
    from jaxir.models.hf import load_bert

    bert_config, bert_params = load_bert(None)
    cos = {}
    plain = I3Model(I3Config(implicit_interaction=False, doc_maxlen=64), bert_config=bert_config,
                    bert_params=bert_params)
    base = plain.encode_passage_texts(plain.init(jax.random.PRNGKey(0)), REAL_TEXTS, progress=False)
    for init in ("identity", "last-layer"):
        model = I3Model(I3Config(doc_maxlen=64, interactor_init=init), bert_config=bert_config,
                        bert_params=bert_params, tokenizer=plain.tokenizer)
        vectors = model.encode_passage_texts(model.init(jax.random.PRNGKey(0)), REAL_TEXTS, progress=False)
        cos[init] = np.sum(vectors * base, axis=1)
    assert cos["identity"].min() >= 0.999, cos["identity"]
    assert cos["last-layer"].max() < 0.9, cos["last-layer"]
