"""Learned sparse doc encoder + loss on a tiny BERT: float64 references, pruning, FLOPS modes, MLM."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.methods.sparse import SparseModel
from jaxir.methods.sparse_config import SparseConfig
from jaxir.models.bert import BertConfig, BertEncoder
from jaxir.training.step import FAST_CPU_COMPILE

DOCS = ["Insulin resistance is linked to obesity.", "Bone density improved after vitamin D.",
        "A randomized controlled trial [SEP] of adults."]


def fast_jit(fn, **kwargs):
    """jit with the cheap-compile CPU options: each test compiles once instead of op by op."""
    return jax.jit(fn, compiler_options=FAST_CPU_COMPILE, **kwargs)


def encode(model, params, ids, mask, top_k=None):
    fn = fast_jit(lambda p, i, m: model.encode_docs(p, {"input_ids": i, "attention_mask": m}, top_k=top_k))
    return np.asarray(fn(params, ids, mask))


def make_model(idf=None, **overrides):
    cfg = SparseConfig(**{"doc_maxlen": 24, "logit_chunk": 5, "batch_size": 4, **overrides})
    return SparseModel(cfg, idf=idf, bert_config=BertConfig.tiny())


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def params(model):
    """Init, then a random head so the reference is not the identity special case."""
    p = fast_jit(model.init)(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    h, v = model.bert_config.hidden_size, model.bert_config.vocab_size
    p["head"] = {"transform": {"kernel": rng.normal(0, 0.3, (h, h)).astype(np.float32),
                               "bias": rng.normal(0, 0.1, h).astype(np.float32)},
                 "norm": {"scale": rng.uniform(0.5, 1.5, h).astype(np.float32),
                          "bias": rng.normal(0, 0.1, h).astype(np.float32)},
                 "bias": rng.normal(0, 0.5, v).astype(np.float32)}
    return p


def ref_logits(model, params, ids, mask):
    """float64 NumPy MLM head over the encoder states."""
    forward = fast_jit(lambda p, i, m: BertEncoder(model.bert_config).apply({"params": p}, i, m))
    hidden = np.asarray(forward(params["bert"], ids, mask), np.float64)
    head = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["head"])
    x = hidden @ head["transform"]["kernel"] + head["transform"]["bias"]
    x = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    x = x * head["norm"]["scale"] + head["norm"]["bias"]
    emb = np.asarray(params["bert"]["embeddings"]["word"]["embedding"], np.float64)
    return x @ emb.T + head["bias"]


def ref_weights(logits, mask, special, double_log=False):
    pooled = np.where(mask[..., None].astype(bool), logits, -np.inf).max(1)
    w = np.log1p(np.maximum(pooled, 0.0))
    if double_log:
        w = np.log1p(w)
    out = w.copy()
    out[:, special] = 0.0
    return out, w


@pytest.mark.parametrize("double_log", [False, True])
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_doc_weights_match_float64_reference(model, params, double_log):
    batch = model.tokenizer(DOCS, padding=True, return_tensors="np")  # L=14: 3 chunks of 5, padded
    ids, mask = batch["input_ids"], batch["attention_mask"]
    m = make_model(double_log=double_log)
    w = encode(m, params, ids, mask)
    want, unzeroed = ref_weights(ref_logits(model, params, ids, mask), mask, model.special_ids, double_log)
    assert w.shape == (3, 30522)
    np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-4)
    # Special and [unused*] columns are zeroed although the head gives them weight.
    cls, sep, unused0 = 101, 102, 1
    assert {cls, sep, unused0} <= set(model.special_ids.tolist())
    assert unzeroed[:, model.special_ids].max() > 0 and (w[:, model.special_ids] == 0).all()


def test_topk_pruning_keeps_the_largest_weights(model, params):
    batch = model.tokenizer(DOCS, padding=True, return_tensors="np")
    full = encode(model, params, batch["input_ids"], batch["attention_mask"])
    pruned = encode(model, params, batch["input_ids"], batch["attention_mask"], top_k=7)
    for f, p in zip(full, pruned):
        assert (p > 0).sum() == 7
        keep = np.argsort(-f, kind="stable")[:7]
        np.testing.assert_array_equal(np.flatnonzero(p), np.sort(keep))
        np.testing.assert_array_equal(p[keep], f[keep])


def test_identity_head_init_gives_standardised_dot_products():
    model = make_model(gelu_shift=40.0, init_vocab_bias=-2.0)
    p = fast_jit(model.init)(jax.random.PRNGKey(1))
    h = np.random.default_rng(1).normal(0, 1.0, (2, 3, 32)).astype(np.float32)
    got = np.asarray(fast_jit(model.logits)(p, jnp.asarray(h)), np.float64)
    z = (h - h.mean(-1, keepdims=True)) / h.std(-1, keepdims=True)
    want = z @ np.asarray(p["bert"]["embeddings"]["word"]["embedding"], np.float64).T - 2.0
    np.testing.assert_allclose(got, want, atol=2e-3)


def training_batch(model, seed=0, b=2, n=3):
    rng = np.random.default_rng(seed)
    q = model.tokenizer(["insulin obesity", "vitamin bone density"], padding="max_length",
                        max_length=8, add_special_tokens=False, return_tensors="np")
    docs = model.tokenizer([DOCS[i % 3] for i in range(b * n)], padding="max_length", max_length=16,
                           return_tensors="np")
    return {"q_ids": q["input_ids"].astype(np.int32), "q_mask": q["attention_mask"].astype(np.int32),
            "d_ids": docs["input_ids"].reshape(b, n, 16).astype(np.int32),
            "d_mask": docs["attention_mask"].reshape(b, n, 16).astype(np.int32),
            "teachers": rng.normal(size=(b, 2, n)).astype(np.float32)}


@pytest.fixture(scope="module")
def idf():
    rng = np.random.default_rng(4)
    return rng.uniform(0.1, 6.0, 30522).astype(np.float32)


@pytest.fixture(scope="module")
def scored(params, idf):
    """(model with idf, batch, student scores [B, N], doc weights [B*N, V]) compiled once."""
    m = make_model(idf=idf)
    batch = training_batch(m)
    s, w, _ = fast_jit(m.student_scores)(params, batch)
    return m, batch, np.asarray(s, np.float64), np.asarray(w, np.float64)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_loss_flops_modes_differ_and_gradients_are_finite(params, idf, scored):
    _, batch, _, w = scored
    out = {}
    for mode in ("idf_aware", "uniform"):
        m = make_model(idf=idf, flops_mode=mode, flops_lambda=0.1)
        (loss, metrics), grads = fast_jit(jax.value_and_grad(m.loss_fn, has_aux=True))(params, batch, None)
        leaves = jax.tree_util.tree_leaves(grads)
        assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
        assert np.abs(np.asarray(grads["head"]["bias"])).max() > 0
        assert np.abs(np.asarray(grads["bert"]["layer_0"]["intermediate"]["kernel"])).max() > 0
        out[mode] = (float(loss), metrics)
    # Reference FLOPS on the encoded docs: raw w vs idf * w.
    flops_raw = np.sum(np.mean(np.abs(w), 0) ** 2)
    flops_idf = np.sum(np.mean(np.abs(w * idf), 0) ** 2)
    np.testing.assert_allclose(float(out["idf_aware"][1]["flops"]), flops_raw, rtol=1e-4)
    np.testing.assert_allclose(float(out["uniform"][1]["flops"]), flops_idf, rtol=1e-4)
    assert abs(out["idf_aware"][0] - out["uniform"][0]) > 1e-3
    np.testing.assert_allclose(float(out["idf_aware"][1]["rank"]), float(out["uniform"][1]["rank"]), rtol=1e-6)


def test_ranking_losses_against_references(idf, scored):
    """KL to the min-max ensemble (scale 30), Margin-MSE, InfoNCE from the student scores."""
    _, batch, s, _ = scored
    t = batch["teachers"].astype(np.float64)
    norm = (t - t.min(2, keepdims=True)) / (t.max(2, keepdims=True) - t.min(2, keepdims=True))
    teacher = 30.0 * norm.mean(1)
    log_softmax = lambda x: x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)
    want = {"kl": np.mean(np.sum(np.exp(log_softmax(teacher)) * (log_softmax(teacher) - log_softmax(s)), 1)),
            "margin_mse": np.mean(((s[:, :1] - s[:, 1:]) - (teacher[:, :1] - teacher[:, 1:])) ** 2),
            "infonce": -np.mean(log_softmax(s)[:, 0])}
    valid = jnp.ones(s.shape, bool)
    for name, value in want.items():
        m = make_model(idf=idf, ranking_loss=name)
        got = m._ranking(jnp.asarray(s, jnp.float32), batch, valid)
        np.testing.assert_allclose(float(got), value, rtol=1e-4)


def test_student_score_is_idf_dot_doc_weights(idf, scored):
    _, batch, s, w = scored
    q = np.zeros((2, 30522))
    for r in range(2):
        ids = np.unique(batch["q_ids"][r][batch["q_mask"][r] == 1])
        q[r, ids] = idf[ids]
    want = np.einsum("bv,bnv->bn", q, w.reshape(2, 3, -1))
    np.testing.assert_allclose(s, want, rtol=1e-4)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_in_batch_negatives_score_every_candidate_of_the_batch(params, idf, scored):
    _, batch, s_own, w = scored
    m = make_model(idf=idf, in_batch_negatives=True)
    s, w_ib, _ = fast_jit(m.student_scores)(params, batch)
    np.testing.assert_allclose(np.asarray(w_ib), w, rtol=1e-5, atol=1e-6)  # same docs, same weights
    q = np.zeros((2, 30522))
    for r in range(2):
        ids = np.unique(batch["q_ids"][r][batch["q_mask"][r] == 1])
        q[r, ids] = idf[ids]
    all_pairs = q @ w.T  # [2, 6]: query r against every doc, batch order
    want = np.stack([np.roll(all_pairs[r], -3 * r) for r in range(2)])
    np.testing.assert_allclose(np.asarray(s), want, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(s)[:, :3], s_own, rtol=1e-4)  # own candidates come first
    # The loss needs teachers for all 6 columns; own-candidate teachers alone are a shape error.
    rng = np.random.default_rng(1)
    loss = fast_jit(m.loss_fn)
    with pytest.raises(AssertionError):
        loss(params, batch)
    wide = dict(batch, teachers=rng.normal(size=(2, 2, 6)).astype(np.float32))
    value, metrics = loss(params, wide)
    assert np.isfinite(float(value)) and 0.0 <= float(metrics["acc"]) <= 1.0
    # A padded candidate is masked in every row it appears in.
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    v = wide["teachers"].copy()
    v[0, :, 5] = v[1, :, 2] = 1e6  # the padded doc's column in rows 0 and 1
    same, _ = loss(params, dict(wide, valid=valid))
    moved, _ = loss(params, dict(wide, valid=valid, teachers=v))
    assert float(same) == pytest.approx(float(moved), rel=1e-6)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_flops_warmup_follows_the_step(params, idf, scored):
    m = make_model(idf=idf, flops_lambda=0.5, flops_warmup_steps=10)
    loss = fast_jit(m.loss_fn)
    _, early = loss(params, scored[1], step=np.int32(1))
    _, late = loss(params, scored[1], step=np.int32(50))
    _, full = loss(params, scored[1])
    assert float(full["flops_weight"]) == pytest.approx(0.5)
    assert float(early["flops_weight"]) == pytest.approx(0.5 * (2 / 10) ** 2)
    assert float(late["flops_weight"]) == pytest.approx(0.5)
    assert float(early["flops"]) == pytest.approx(float(late["flops"]))


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_mlm_loss_masks_only_real_tokens(params):
    m = make_model(mlm_probability=0.5)
    batch = m.tokenizer(DOCS, padding=True, return_tensors="np")
    arrays = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    grad_fn = fast_jit(jax.value_and_grad(m.mlm_loss_fn, has_aux=True))
    (loss, metrics), grads = grad_fn(params, arrays, jax.random.PRNGKey(3))
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert np.abs(np.asarray(grads["head"]["transform"]["kernel"])).max() > 0
    none = make_model(mlm_probability=0.0)
    loss0, _ = fast_jit(none.mlm_loss_fn)(params, arrays, jax.random.PRNGKey(3))
    assert float(loss0) == 0.0


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_encode_doc_texts_returns_positive_sorted_terms(model, params):
    vectors = model.encode_doc_texts(params, DOCS, progress=False)
    batch = model.tokenizer(DOCS[:1], return_tensors="np")
    w = encode(model, params, batch["input_ids"], batch["attention_mask"])[0]
    terms, weights = vectors[0]
    np.testing.assert_array_equal(terms, np.flatnonzero(w > 0))
    np.testing.assert_allclose(weights, w[terms], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_windows_pool_like_one_long_document(params):
    """[B, W, L] windows == the max over each window encoded as its own document."""
    m = make_model(doc_maxlen=10, doc_windows=3)
    from jaxir.text import assemble_windows

    tok_ids = m.tokenizer(DOCS, add_special_tokens=False)["input_ids"]
    long_doc = tok_ids[0] + tok_ids[1] + tok_ids[2]  # > 2 windows of 8 tokens
    b = assemble_windows(m.tokenizer, [long_doc, tok_ids[1]], max_length=10, max_windows=3)
    assert b.input_ids.shape[1] == 3
    fn = fast_jit(lambda p, i, mk: m.encode_docs(p, {"input_ids": i, "attention_mask": mk}))
    w = np.asarray(fn(params, b.input_ids, b.attention_mask))
    per_window = encode(m, params, b.input_ids.reshape(-1, 10), b.attention_mask.reshape(-1, 10))
    np.testing.assert_allclose(w, per_window.reshape(2, 3, -1).max(axis=1), rtol=1e-5, atol=1e-5)
    # Through the text path: the long document is not cut at doc_maxlen.
    text = " ".join(DOCS)
    terms, weights = m.encode_doc_texts(params, [text], progress=False)[0]
    np.testing.assert_array_equal(terms, np.flatnonzero(w[0] > 0))
    np.testing.assert_allclose(weights, w[0, terms], rtol=1e-5, atol=1e-5)
    cut = make_model(doc_maxlen=10, doc_windows=1).encode_doc_texts(params, [text], progress=False)[0]
    assert len(cut[0]) < len(terms)


def test_scoring_vocabulary_computes_only_those_columns(model, params):
    rng = np.random.default_rng(4)
    idf = np.where(rng.random(30522) < 0.3, rng.uniform(0.0, 3.0, 30522), 0.0).astype(np.float32)
    m = make_model(idf=idf, min_idf=1.0)
    assert not np.isin(m.vocab_ids, m.special_ids).any()
    np.testing.assert_array_equal(m.vocab_ids, np.setdiff1d(np.flatnonzero(idf > 1.0), m.special_ids))
    batch = model.tokenizer(DOCS, padding=True, return_tensors="np")
    full = encode(model, params, batch["input_ids"], batch["attention_mask"])
    fn = fast_jit(lambda p, i, mk, v: m.encode_docs(p, {"input_ids": i, "attention_mask": mk}, vocab_ids=v))
    sub = np.asarray(fn(params, batch["input_ids"], batch["attention_mask"], m.vocab_ids))
    np.testing.assert_allclose(sub[:, m.vocab_ids], full[:, m.vocab_ids], rtol=1e-5, atol=1e-5)
    outside = np.setdiff1d(np.arange(30522), m.vocab_ids)
    assert (sub[:, outside] == 0).all() and (full[:, outside] > 0).any()


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_lexical_prior_adds_to_the_score_but_not_to_flops(params, idf, scored):
    """s = q . (w + prior) with the prior scattered from padded (id, weight) rows; FLOPS sees w only."""
    _, batch, s, w = scored
    rng = np.random.default_rng(3)
    ids = np.zeros((2, 3, 4), np.int32)
    vals = np.zeros((2, 3, 4), np.float32)
    for b in range(2):
        own = np.unique(batch["q_ids"][b][batch["q_mask"][b] == 1])
        for n in range(3):  # one of the query's own tokens, 2 random ids, a (0, 0.0) padding slot
            first = rng.choice(own[idf[own] > 0])
            others = np.setdiff1d(np.flatnonzero(idf > 0), [first])
            ids[b, n, :3] = [first, *rng.choice(others, 2, replace=False)]
            vals[b, n, :3] = rng.uniform(0.1, 1.0, 3)
    prior = np.zeros((6, 30522))
    np.put_along_axis(prior, ids.reshape(6, 4), vals.reshape(6, 4), axis=1)
    prior[:, 0] = 0.0
    q = np.zeros((2, 30522))
    for r in range(2):
        qi = np.unique(batch["q_ids"][r][batch["q_mask"][r] == 1])
        q[r, qi] = idf[qi]
    m = make_model(idf=idf, flops_lambda=0.1)
    with_prior = dict(batch, prior_ids=ids, prior_vals=vals)
    got, w_head, _ = fast_jit(m.student_scores)(params, with_prior)
    want = np.einsum("bv,bnv->bn", q, (w + prior).reshape(2, 3, -1))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(got) - s).max() > 1e-3  # the prior moved the scores
    np.testing.assert_allclose(np.asarray(w_head), w, rtol=1e-5, atol=1e-6)
    _, plain = fast_jit(m.loss_fn)(params, batch)
    _, mixed = fast_jit(m.loss_fn)(params, with_prior)
    assert float(mixed["flops"]) == pytest.approx(float(plain["flops"]), rel=1e-6)
    assert float(mixed["doc_nnz"]) == float(plain["doc_nnz"])
