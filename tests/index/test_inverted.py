"""Posting lists against dense float64 matrix scoring on fresh random sparse data."""
import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.index.inverted import InvertedIndex, NoKnownTermsWarning

N_DOCS, VOCAB = 300, 400


def _random_matrix(seed, density=0.03):
    rng = np.random.default_rng(seed)
    dense = rng.gamma(2.0, 1.5, (N_DOCS, VOCAB)) * (rng.random((N_DOCS, VOCAB)) < density)
    dense[7] = 0.0  # a document without postings
    return dense


def _stream(dense, rng):
    """Per-doc (term_ids, weights) in doc order, terms shuffled within each doc."""
    for row in dense:
        terms = rng.permutation(np.flatnonzero(row))
        yield terms, row[terms]


def _query(rng, n_terms=6):
    terms = rng.choice(VOCAB, n_terms, replace=False)
    return terms, rng.uniform(0.2, 3.0, n_terms)


def _reference_top_k(scores, k):
    cand = np.flatnonzero(scores)
    order = np.lexsort((cand, -scores[cand]))[:k]
    return cand[order], scores[cand][order]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_scores_match_dense_matrix_within_quantisation_bound(dtype, ordered):
    rng = np.random.default_rng({"float32": 0, "float16": 1, "uint8": 2}[dtype])
    dense = _random_matrix(rng.integers(1 << 30))
    index = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB, dtype=dtype)
    assert index.weights.dtype == np.dtype(dtype)
    for _ in range(10):
        terms, weights = _query(rng)
        expected = dense[:, terms] @ weights
        got = index.score_all(terms, weights, ordered=ordered)
        assert got.dtype == np.float32 and got.shape == (N_DOCS,)
        if dtype == "float32":
            bound = 1e-5 * np.abs(expected) + 1e-6
        elif dtype == "float16":  # relative rounding 2**-11 per stored weight
            bound = (dense[:, terms] * 2.0**-11) @ weights + 1e-5
        else:  # each posting off by at most scale / 2
            bound = np.full(N_DOCS, index.scale / 2 * weights.sum() * (1 + 1e-5) + 1e-5)
            bound[dense[:, terms].max(1) == 0] = 0.0
        assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) - bound)


def test_uint8_error_is_not_trivially_zero():
    rng = np.random.default_rng(3)
    dense = _random_matrix(3)
    exact = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB)
    quant = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB, dtype="uint8")
    terms, weights = _query(rng, 20)
    assert np.abs(exact.score_all(terms, weights) - quant.score_all(terms, weights)).max() > 1e-4


def test_weights_that_quantise_to_zero_are_not_postings():
    # 1000 -> 255; 1.0 rounds to 0 in uint8 (scale ~3.9) and 1e-8 underflows float16.
    docs = [([0, 1], [1000.0, 1.0]), ([1, 2], [1e-8, 500.0])]
    u8 = InvertedIndex.build(docs, vocab_size=4, dtype="uint8")
    assert u8.postings.size == 2 and np.all(u8.weights > 0)
    np.testing.assert_array_equal(u8.nonzeros_per_doc(), [1, 1])
    assert u8.postings_touched(np.array([1])) == 0
    f16 = InvertedIndex.build(docs, vocab_size=4, dtype="float16")
    assert f16.postings.size == 3 and np.all(f16.weights > 0)
    assert InvertedIndex.build(docs, vocab_size=4).postings.size == 4


def test_search_top_k_matches_reference_and_batch():
    rng = np.random.default_rng(4)
    dense = _random_matrix(4, density=0.1)
    index = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB)
    queries = [_query(rng) for _ in range(8)]
    batch = index.search_batch(queries, k=12)
    for (terms, weights), (indices, scores) in zip(queries, batch):
        ref_indices, ref_scores = _reference_top_k(dense[:, terms] @ weights, 12)
        np.testing.assert_array_equal(indices, ref_indices)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
    term = int(np.flatnonzero(dense[0])[0])
    for k in (100, 1000):  # fewer than k docs match: only docs with a non-zero score come back
        indices, _ = index.search([term], [1.0], k=k)
        np.testing.assert_array_equal(indices, _reference_top_k(dense[:, term], k)[0])
        assert 0 < len(indices) == np.count_nonzero(dense[:, term]) < 100


def test_ties_break_to_lower_doc_index():
    docs = [([0], [2.0]), ([1], [1.0]), ([0], [2.0]), ([0, 1], [1.0, 1.0]), ([0], [2.0])]
    index = InvertedIndex.build(docs)
    indices, scores = index.search([0, 1], [1.0, 1.0], k=3)
    np.testing.assert_array_equal(indices, [0, 2, 3])
    np.testing.assert_array_equal(scores, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("ordered", [True, False])
def test_repeated_and_unknown_query_terms(ordered):
    rng = np.random.default_rng(5)
    dense = _random_matrix(5, density=0.1)
    dense[:, 11] = 0.0  # a term without postings
    index = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB)
    np.testing.assert_allclose(index.score_all([3, 3, VOCAB + 5, -1], [1.0, 1.0, 9.0, 9.0], ordered=ordered),
                               2 * dense[:, 3], rtol=1e-6)
    with pytest.warns(NoKnownTermsWarning):
        indices, scores = index.search([VOCAB + 1, 11], [1.0, 1.0], k=5, ordered=ordered)
    assert indices.shape == scores.shape == (0,)


def test_stats_helpers():
    rng = np.random.default_rng(6)
    dense = _random_matrix(6)
    index = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB)
    np.testing.assert_array_equal(index.nonzeros_per_doc(), (dense != 0).sum(1))
    terms = np.array([1, 5, 9, VOCAB + 3])
    assert index.postings_touched(terms) == (dense[:, terms[:3]] != 0).sum()


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_save_load_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(7)
    dense = _random_matrix(7)
    index = InvertedIndex.build(_stream(dense, rng), vocab_size=VOCAB, dtype=dtype)
    index.save(tmp_path / "sparse", model_fingerprint="splade:1", meta={"note": "x"})
    loaded = InvertedIndex.load(tmp_path / "sparse", model_fingerprint="splade:1")
    assert loaded.scale == index.scale and loaded.n_docs == N_DOCS and loaded.vocab_size == VOCAB
    terms, weights = _query(rng)
    np.testing.assert_array_equal(loaded.score_all(terms, weights), index.score_all(terms, weights))


def test_bad_builds_raise():
    with pytest.raises(DataError, match="doc 1: term 2 occurs twice"):
        InvertedIndex.build([([0], [1.0]), ([2, 2], [1.0, 1.0])])
    with pytest.raises(DataError, match="zero documents"):
        InvertedIndex.build([])
    with pytest.raises(ValueError, match=">= 0"):
        InvertedIndex.build([([0], [-1.0])], dtype="uint8")
    with pytest.raises(DataError, match="doc 0"):
        InvertedIndex.build([([0, 1], [1.0])])
    with pytest.raises(DataError, match="non-finite"):
        InvertedIndex.build([([0], [np.nan])])


def test_keep_largest_prunes_to_a_global_weight_threshold():
    rng = np.random.default_rng(11)
    dense = np.where(rng.random((40, 60)) < 0.2, rng.uniform(0.1, 3.0, (40, 60)), 0.0)
    docs, terms = np.nonzero(dense)
    index = InvertedIndex.from_coo(docs, terms, dense[docs, terms], n_docs=40, vocab_size=60)
    n = len(docs) // 3
    pruned = index.keep_largest(n)
    assert len(pruned.postings) == n and pruned.nonzeros_per_doc().sum() == n
    threshold = np.sort(dense[dense > 0])[::-1][n - 1]  # continuous weights: no ties
    want = np.where(dense >= threshold, dense, 0.0)
    q_terms, q_w = np.array([1, 5, 7, 30]), np.array([0.5, 2.0, 1.0, 1.5], np.float32)
    ref = want[:, q_terms].astype(np.float64) @ q_w
    np.testing.assert_allclose(pruned.score_all(q_terms, q_w), ref, rtol=1e-5)
    assert pruned.postings_touched(q_terms) == int((want[:, q_terms] > 0).sum())
    assert len(index.keep_largest(10**9).postings) == len(index.postings)
