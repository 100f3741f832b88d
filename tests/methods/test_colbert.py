"""ColBERT model: query/doc assembly, [MASK] attention, punctuation, MaxSim and loss references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxir.methods.colbert import ColBERTModel
from jaxir.methods.colbert_config import ColBERTConfig
from jaxir.models.bert import BertConfig, BertEncoder

CLS, SEP, PAD, MASK, Q_MARK, D_MARK = 101, 102, 0, 103, 1, 2
QUERIES = ["what causes insulin resistance?", "Vitamin D, bone density; and fractures"]
DOCS = ["Insulin resistance is linked to obesity, inflammation (and genetics).",
        "Bone density improved!",
        "Vitamin D supplementation: a randomized, controlled trial of 1,200 adults."]


def make_model(**overrides):
    cfg = ColBERTConfig(**{"dim": 16, "query_maxlen": 16, "doc_maxlen": 24, "batch_size": 4,
                           **overrides})
    return ColBERTModel(cfg, bert_config=BertConfig.tiny())


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def params(model):
    return model.init(jax.random.PRNGKey(0))


def test_query_layout_markers_and_mask_padding(model):
    batch = model.tokenize_queries(["cat", "a very long query " * 10])
    ids, att = batch.input_ids, batch.attention_mask
    assert ids.shape == (2, 16)
    n_tok = len(model.tokenizer("cat", add_special_tokens=False)["input_ids"])
    assert list(ids[0, :2]) == [CLS, Q_MARK] and ids[0, 2 + n_tok] == SEP
    assert (ids[0, 3 + n_tok:] == MASK).all() and PAD not in ids
    assert list(att[0]) == [1] * (3 + n_tok) + [0] * (16 - 3 - n_tok)
    assert ids[1, -1] == SEP and att[1].all()  # truncated to exactly query_maxlen, [SEP] kept


def test_doc_layout_and_punctuation_ids(model):
    assert model.tokens.q_marker == Q_MARK and model.tokens.d_marker == D_MARK
    comma, bang = model.tokenizer.convert_tokens_to_ids([",", "!"])
    assert {comma, bang} <= set(model.tokens.punctuation)
    batch = model.tokenize_docs(["Bone, density!"])
    ids = batch.input_ids[0]
    assert ids.shape == (24,) and list(ids[:2]) == [CLS, D_MARK]
    keep = np.asarray(model.doc_token_mask(jnp.asarray(batch.input_ids),
                                           jnp.asarray(batch.attention_mask)))[0]
    assert not keep[np.isin(ids, [comma, bang])].any() and not keep[ids == PAD].any()
    assert keep[:2].all() and keep[batch.lengths[0] - 1]  # [CLS] [D] ... [SEP] are stored


@functools.lru_cache(maxsize=None)
def _bert_fn(config):
    return jax.jit(lambda p, i, m: BertEncoder(config).apply({"params": p}, i, m))


def _reference_tokens(model, params, ids, attention):
    """float64 NumPy: normalize(BERT(ids, attention) @ W)."""
    hidden = _bert_fn(model.bert_config)(params["bert"], ids, attention)
    out = np.asarray(hidden, np.float64) @ np.asarray(params["projection"]["dense"]["kernel"], np.float64)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_query_encoding_hides_mask_keys_but_returns_all_vectors(model, params):
    batch = model.tokenize_queries(QUERIES)
    q, q_mask = jax.jit(model.encode_queries)(params, batch.arrays())
    assert q.shape == (2, 16, 16) and np.asarray(q_mask).all()
    want = _reference_tokens(model, params, batch.input_ids, batch.attention_mask)
    np.testing.assert_allclose(np.asarray(q), want, atol=2e-5)
    # Real tokens cannot see the [MASK] positions: replacing those ids changes nothing there.
    real = batch.attention_mask.astype(bool)
    other = np.where(real, batch.input_ids, 2000)
    q2, _ = jax.jit(model.encode_queries)(params, {**batch.arrays(), "input_ids": other})
    np.testing.assert_allclose(np.asarray(q2)[real], np.asarray(q)[real], atol=1e-6)
    # ...while with attend_to_mask_tokens they can.
    attend = make_model(attend_to_mask_tokens=True)
    qa, _ = jax.jit(attend.encode_queries)(params, batch.arrays())
    assert np.abs(np.asarray(qa)[real] - np.asarray(q)[real]).max() > 1e-3


def test_encode_doc_texts_drops_punctuation_and_padding(model, params):
    embs = model.encode_doc_texts(params, DOCS, progress=False)
    batch = model.tokenize_docs(DOCS)
    full = _reference_tokens(model, params, batch.input_ids, batch.attention_mask)
    punct = np.isin(batch.input_ids, model.tokens.punctuation)
    for i, e in enumerate(embs):
        keep = batch.attention_mask[i].astype(bool) & ~punct[i]
        assert e.dtype == np.float32 and e.shape == (keep.sum(), 16)
        np.testing.assert_allclose(e, full[i][keep], atol=2e-5)
    assert punct.sum() > 5  # the texts really contain punctuation


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_maxsim_through_model_matches_float64_reference(model, params):
    got = np.asarray(model.score(params, model.tokenize_queries(QUERIES).arrays(),
                                 model.tokenize_docs(DOCS).arrays()))
    qs = model.encode_query_texts(params, QUERIES, progress=False).astype(np.float64)
    ds = [d.astype(np.float64) for d in model.encode_doc_texts(params, DOCS, progress=False)]
    want = np.array([[(q @ d.T).max(axis=1).sum() for d in ds] for q in qs])
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _loss_batch(model, n_way=3, seed=0):
    rng = np.random.default_rng(seed)
    queries = model.tokenize_queries(QUERIES)
    texts = DOCS + ["Obesity and inflammation", "Fractures in the elderly, a cohort"]
    picks = np.array([[0, 3, 1], [2, 4, 0]])[:, :n_way]
    docs = model.tokenize_docs([texts[i] for i in picks.reshape(-1)])
    b, ld = len(QUERIES), docs.input_ids.shape[1]
    return {"q_ids": queries.input_ids, "q_mask": queries.attention_mask,
            "d_ids": docs.input_ids.reshape(b, n_way, ld),
            "d_mask": docs.attention_mask.reshape(b, n_way, ld),
            "teacher": rng.normal(size=(b, n_way)).astype(np.float32) * 3}


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _reference_loss(model, params, batch, tau):
    b, n, ld = batch["d_ids"].shape
    q = _reference_tokens(model, params, batch["q_ids"], batch["q_mask"])
    d_ids, d_att = batch["d_ids"].reshape(b * n, ld), batch["d_mask"].reshape(b * n, ld)
    d = _reference_tokens(model, params, d_ids, d_att)
    keep = d_att.astype(bool) & ~np.isin(d_ids, model.tokens.punctuation)
    s = np.array([[(q[i] @ d[j][keep[j]].T).max(axis=1).sum() for j in range(b * n)] for i in range(b)])
    student = s[np.arange(b)[:, None], np.arange(b)[:, None] * n + np.arange(n)]
    log_pt, log_ps = _log_softmax(batch["teacher"] / tau), _log_softmax(student / tau)
    kl = np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=1))
    ib = []
    for i in range(b):  # own hard negatives removed, label = own positive
        cols = [c for c in range(b * n) if c // n != i or c % n == 0]
        ib.append(-_log_softmax(s[i, cols])[cols.index(i * n)])
    return kl + np.mean(ib), kl, np.mean(ib)


def test_loss_matches_numpy_reference(params):
    tau = 2.5
    model = make_model(distill_temperature=tau)
    batch = _loss_batch(model)
    loss, metrics = jax.jit(model.loss_fn)(params, batch, None)
    want, kl, ib = _reference_loss(model, params, batch, tau)
    np.testing.assert_allclose([float(loss), float(metrics["nway"]), float(metrics["ib"])],
                               [want, kl, ib], rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_loss_variants_and_gradients(model, params):
    batch = _loss_batch(model)
    plain = make_model(distillation=False, in_batch_negatives=False)
    loss_ce, m = jax.jit(plain.loss_fn)(params, batch)
    assert float(m["ib"]) == 0.0
    queries = {"input_ids": batch["q_ids"], "attention_mask": batch["q_mask"]}
    docs = {"input_ids": batch["d_ids"].reshape(6, -1), "attention_mask": batch["d_mask"].reshape(6, -1)}
    scores = np.asarray(jax.jit(plain.score)(params, queries, docs))
    own = scores[[[0], [1]], np.arange(3) + np.array([[0], [3]])]
    np.testing.assert_allclose(float(loss_ce), np.mean(-_log_softmax(own)[:, 0]), rtol=1e-5)

    grad_fn = jax.jit(jax.value_and_grad(lambda p: model.loss_fn(p, batch)[0]))
    loss, grads = grad_fn(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert float(jnp.abs(grads["projection"]["dense"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["bert"]["layer_0"]["attention"]["qkv"]["kernel"]).max()) > 0
    stepped = jax.tree_util.tree_map(lambda p, g: p - 1e-3 * g, params, grads)
    assert float(grad_fn(stepped)[0]) < float(loss)
