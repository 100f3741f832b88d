"""BM25 lexical prior: float64 references on random token lists, padding, vector sums, and an index
whose head adds nothing scoring exactly BM25 over WordPieces."""
import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.methods.lexical_prior import LexicalPrior, add_vectors


def ref_prior(tokens, avgdl, k1, b, weight):
    """{term: weight} in float64, straight from the BM25 formula."""
    terms, tf = np.unique(tokens, return_counts=True)
    norm = k1 * (1 - b + b * len(tokens) / avgdl)
    return {int(t): weight * c / (c + norm) for t, c in zip(terms, tf)}


def random_docs(rng, n=20, vocab=50):
    return [rng.integers(0, vocab, rng.integers(1, 40)).tolist() for _ in range(n)]


def test_vector_matches_float64_bm25_document_side():
    rng = np.random.default_rng(0)
    docs = random_docs(rng)
    prior = LexicalPrior.fit(docs, k1=1.2, b=0.6, weight=2.0)
    assert prior.avgdl == pytest.approx(np.mean([len(d) for d in docs]))
    for d in docs:
        ids, w = prior.vector(d)
        want = ref_prior(d, prior.avgdl, 1.2, 0.6, 2.0)
        assert ids.dtype == np.int32 and w.dtype == np.float32
        assert ids.tolist() == sorted(want)
        np.testing.assert_allclose(w, [want[i] for i in ids.tolist()], rtol=1e-6)


def test_skip_and_keep_ids_filter_terms():
    prior = LexicalPrior(avgdl=5.0)
    ids, _ = prior.vector([1, 2, 2, 3, 7], skip_ids=[2])
    assert ids.tolist() == [1, 3, 7]
    ids, _ = prior.vector([1, 2, 2, 3, 7], skip_ids=[2], keep_ids=[2, 3, 7, 9])
    assert ids.tolist() == [3, 7]


def test_padded_rows_keep_the_largest_weights_at_a_fixed_width():
    prior = LexicalPrior(avgdl=4.0)
    docs = [[5, 5, 5, 6, 7, 7, 8], [9]]
    ids, vals = prior.padded(docs, 3)
    assert ids.shape == vals.shape == (2, 3)
    full_ids, full_w = prior.vector(docs[0])
    top = sorted(np.argsort(-full_w, kind="stable")[:3])
    assert ids[0].tolist() == full_ids[top].tolist()
    np.testing.assert_allclose(vals[0], full_w[top])
    assert ids[1].tolist() == [9, 0, 0] and vals[1, 1:].tolist() == [0.0, 0.0]


def test_add_vectors_sums_shared_terms():
    rng = np.random.default_rng(1)
    dense = np.zeros((2, 30))
    parts = []
    for r in range(2):
        ids = np.sort(rng.choice(30, 10, replace=False))
        vals = rng.uniform(0, 1, 10)
        dense[r, ids] = vals
        parts.append((ids, vals))
    ids, vals = add_vectors(*parts)
    total = dense.sum(0)
    assert ids.tolist() == np.flatnonzero(total).tolist()
    np.testing.assert_allclose(vals, total[ids], rtol=1e-6)


def test_empty_corpus_is_an_error():
    with pytest.raises(DataError, match="zero documents"):
        LexicalPrior.fit([])


def test_prior_only_index_scores_bm25_over_wordpieces(tmp_path):
    """A head biased far below zero adds nothing: the index is the prior, and a search scores
    sum over distinct query WordPieces of idf * tf-saturation (float64 reference)."""
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig
    from jaxir.retrievers.sparse import SparseRetriever, save_checkpoint
    from jaxir.text.idf import compute_idf
    from jaxir.text import tokenize
    import jax

    docs = ["Insulin resistance is linked to obesity in obese adults and obese children.",
            "Bone density improved after vitamin D; vitamin D also helps calcium uptake.",
            "The trial randomized adults with insulin resistance to metformin or placebo.",
            "Sleep loss impairs memory."]
    config = SparseConfig(lexical_prior=True, init_vocab_bias=-1e4, doc_maxlen=32, batch_size=4)
    model = SparseModel(config)
    save_checkpoint(tmp_path / "ckpt", config, model.init(jax.random.PRNGKey(0)))
    retriever = SparseRetriever(checkpoint=str(tmp_path / "ckpt"), progress=False, dtype="float32")
    path = retriever.build(["a", "b", "c", "d"], docs, tmp_path / "index")
    index = retriever.open(path).index
    tokens = tokenize(model.tokenizer, docs)
    avgdl = np.mean([len(t) for t in tokens])
    assert index.meta["prior_avgdl"] == pytest.approx(avgdl)
    assert (index.meta["prior_k1"], index.meta["prior_b"], index.meta["prior_weight"]) == (1.5, 0.75, 1.0)
    idf = compute_idf(tokens, len(model.tokenizer)).astype(np.float64)
    for query in ["obese adults with insulin resistance", "vitamin D and bone", "memory"]:
        q = set(tokenize(model.tokenizer, [query])[0])
        want = [sum(idf[t] * ref_prior(doc, avgdl, 1.5, 0.75, 1.0).get(t, 0.0) for t in q) for doc in tokens]
        got = index.inverted.score_all(*index.query_vector(query))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_head_scale_weighs_the_head_against_the_prior(tmp_path):
    """score(scale) = score(0) + scale * (score(1) - score(0)): the prior plus a scaled head."""
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig
    from jaxir.retrievers.sparse import SparseRetriever, save_checkpoint
    import jax

    docs = ["Insulin resistance is linked to obesity in adults.", "Bone density improved after vitamin D.",
            "Metformin for adults with insulin resistance."]
    config = SparseConfig(lexical_prior=True, doc_maxlen=32, batch_size=4)  # the untrained head adds terms
    save_checkpoint(tmp_path / "ckpt", config, SparseModel(config).init(jax.random.PRNGKey(0)))
    scores = {}
    for scale in (0.0, 1.0, 2.5):
        r = SparseRetriever(checkpoint=str(tmp_path / "ckpt"), progress=False, dtype="float32", head_scale=scale)
        index = r.open(r.build(["a", "b", "c"], docs, tmp_path / f"index-{scale}")).index
        assert index.meta["head_scale"] == scale
        q = "obese adults insulin"
        scores[scale] = index.inverted.score_all(*index.query_vector(q)).astype(np.float64)
    with pytest.raises(ValueError, match="built with head_scale 1.0"):  # a build-time choice
        SparseRetriever(checkpoint=str(tmp_path / "ckpt"), head_scale=0.5).open(tmp_path / "index-1.0")
    head = scores[1.0] - scores[0.0]
    assert np.abs(head).max() > 1e-3  # the head does add weight
    np.testing.assert_allclose(scores[2.5], scores[0.0] + 2.5 * head, rtol=1e-5, atol=1e-5)


def test_head_scale_needs_the_prior():
    from jaxir.methods.sparse_config import SparseConfig

    with pytest.raises(ValueError, match="needs lexical_prior"):
        SparseConfig(head_scale=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        SparseConfig(lexical_prior=True, head_scale=-1.0)
