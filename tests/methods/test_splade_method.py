"""SPLADE's model side on the tiny BERT (float64 references): the query vector is the document
encoder on the query, the loss has FLOPS on both sides, text encoding matches the batch path."""
import jax
import numpy as np
import pytest

from jaxir.methods.sparse_config import SparseConfig
from tests.methods.test_sparse_method import (fast_jit, idf, make_model, model, params, ref_logits,  # noqa: F401
                                      ref_weights, training_batch)


def splade_batch(model, seed=0):
    """The n-way batch of `training_batch` with [CLS] query [SEP] rows (the mlm query encoder's)."""
    batch = training_batch(model, seed)
    q = model.tokenizer(["insulin obesity", "vitamin bone density"], padding="max_length", max_length=8,
                        return_tensors="np")
    return {**batch, "q_ids": q["input_ids"].astype(np.int32), "q_mask": q["attention_mask"].astype(np.int32)}


def test_splade_queries_are_the_document_encoder_on_the_query(params, idf):
    """Siamese: q is the float64 reference weight vector of the query's own tokens, s = q . w."""
    m = make_model(idf=idf, query_encoder="mlm")
    batch = splade_batch(m)
    s, w, q = (np.asarray(x, np.float64) for x in fast_jit(m.student_scores)(params, batch))
    logits = ref_logits(m, params, batch["q_ids"], batch["q_mask"])
    _, raw = ref_weights(logits, batch["q_mask"], m.special_ids)
    keep = np.zeros(30522, bool)
    keep[m.vocab_ids] = True  # the scoring vocabulary of the idf table
    np.testing.assert_allclose(q, np.where(keep, raw, 0.0), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(s, np.einsum("bv,bnv->bn", q, w.reshape(2, 3, -1)), rtol=1e-4)
    assert (q[:, m.special_ids] == 0).all() and (q > 0).sum() > 0


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_splade_loss_has_flops_on_both_sides(params, idf):
    """loss = rank + lambda_d FLOPS(w) + lambda_q FLOPS(q), each against a NumPy FLOPS; the
    query term reaches the encoder's gradient."""
    base = make_model(idf=idf, query_encoder="mlm", flops_lambda=0.1, query_flops_lambda=0.0)
    both = make_model(idf=idf, query_encoder="mlm", flops_lambda=0.1, query_flops_lambda=0.3)
    batch = splade_batch(base)
    _, w, q = (np.asarray(x, np.float64) for x in fast_jit(base.student_scores)(params, batch))
    (l0, m0), g0 = fast_jit(jax.value_and_grad(base.loss_fn, has_aux=True))(params, batch, None)
    (l1, m1), g1 = fast_jit(jax.value_and_grad(both.loss_fn, has_aux=True))(params, batch, None)
    flops_q = np.sum(np.mean(q, 0) ** 2)
    np.testing.assert_allclose(float(m1["query_flops"]), flops_q, rtol=1e-4)
    np.testing.assert_allclose(float(m1["flops"]), np.sum(np.mean(w, 0) ** 2), rtol=1e-4)
    np.testing.assert_allclose(float(l1) - float(l0), 0.3 * flops_q, rtol=1e-3)
    assert float(m1["query_nnz"]) == pytest.approx(float(np.mean((q > 0).sum(1))))
    diff = np.asarray(g1["head"]["bias"]) - np.asarray(g0["head"]["bias"])
    assert np.abs(diff).max() > 0 and all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(g1))


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_splade_query_texts_match_the_batch_encoder(params, idf):
    m = make_model(idf=idf, query_encoder="mlm", query_maxlen=8)
    batch = splade_batch(m)
    _, _, q = fast_jit(m.student_scores)(params, batch)
    got = m.encode_query_texts(params, ["insulin obesity", "vitamin bone density"], vocab_ids=m.vocab_ids)
    for r, (terms, weights) in enumerate(got):
        row = np.asarray(q[r])
        np.testing.assert_array_equal(terms, np.flatnonzero(row > 0))
        np.testing.assert_allclose(weights, row[terms], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs query_encoder='mlm'"):
        make_model(idf=idf).encode_query_texts(params, ["x"])
    for bad, words in [({"lexical_prior": True}, "needs idf queries"), ({"flops_mode": "uniform"}, "uniform"),
                       ({"query_maxlen": 2}, "no room"), ({"query_encoder": "bert"}, "query_encoder must be")]:
        with pytest.raises(ValueError, match=words):
            SparseConfig(**{"query_encoder": "mlm", **bad})
