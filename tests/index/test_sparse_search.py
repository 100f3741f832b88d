"""Sparse search: query vectors, equality with dense q.W scoring, quantisation, warnings, save/load."""
import warnings

import numpy as np
import pytest

from jaxir.errors import EmptyInputError, IndexFormatError
from jaxir.index.inverted import NoKnownTermsWarning
from jaxir.index.sparse_search import SparseIndex

QUERIES = ["insulin resistance in obese adults", "vitamin D and bone density", "cancer cancer cells"]


@pytest.fixture(scope="module")
def tok():
    from jaxir.text import load_tokenizer

    return load_tokenizer()


def random_corpus(tok, seed, n_docs=40):
    """Dense float64 doc weights W [N, V] over query tokens + random others, and an idf [V]."""
    rng = np.random.default_rng(seed)
    vocab = len(tok)
    pool = np.unique(np.concatenate([tok(q, add_special_tokens=False)["input_ids"] for q in QUERIES]
                                    + [rng.integers(1000, vocab, size=50)]))
    w = np.zeros((n_docs, vocab))
    for d in range(n_docs):
        terms = rng.choice(pool, size=rng.integers(2, 12), replace=False)
        w[d, terms] = rng.uniform(0.05, 3.0, size=len(terms))
    idf = np.where(rng.random(vocab) < 0.9, rng.uniform(0.1, 8.0, size=vocab), 0.0)
    return w, idf.astype(np.float32)


def build(tok, w, idf, dtype):
    vectors = [(np.flatnonzero(row), row[np.flatnonzero(row)]) for row in w]
    ids = [f"d{i}" for i in range(len(w))]
    return SparseIndex.build(vectors, doc_ids=ids, idf=idf, tokenizer=tok, dtype=dtype)


def dense_query(tok, text, idf):
    q = np.zeros(len(idf))
    ids = set(tok(text, add_special_tokens=False)["input_ids"]) - set(tok.all_special_ids)
    q[list(ids)] = idf[list(ids)]
    return q


@pytest.mark.parametrize("dtype,atol", [("float32", 1e-4), ("uint8", None)])
def test_search_equals_dense_scoring(tok, dtype, atol):
    w, idf = random_corpus(tok, seed=11)
    index = build(tok, w, idf, dtype)
    for text in QUERIES:
        q = dense_query(tok, text, idf)
        want = w @ q
        ids, scores = index.search(text, k=10)
        n_pos = int((want > 0).sum())
        assert len(ids) == min(10, n_pos) > 0
        got_rows = [int(d[1:]) for d in ids]
        # Quantised weights err by <= scale/2 per posting, so scores by <= scale/2 * sum(q).
        tol = atol if atol is not None else index.inverted.scale / 2 * q.sum() + 1e-4
        np.testing.assert_allclose(scores, want[got_rows], atol=tol)
        kth = np.sort(want)[::-1][len(ids) - 1]
        assert (want[got_rows] >= kth - 2 * tol).all()
        if dtype == "float32":
            order = np.lexsort((np.arange(len(want)), -want))[: len(ids)]
            assert got_rows == order.tolist()


def test_query_vector_is_distinct_ids_with_idf(tok):
    idf = np.ones(len(tok), np.float32)
    index = build(tok, np.eye(3, len(tok)) * 2.0, idf, "float32")
    terms, weights = index.query_vector("cancer cancer [SEP] cancer")
    assert terms.tolist() == [tok.convert_tokens_to_ids("cancer")] and weights.tolist() == [1.0]


def test_unknown_or_special_only_query_warns_and_returns_empty(tok):
    w, idf = random_corpus(tok, seed=3)
    idf[tok.convert_tokens_to_ids("zebra")] = 0.0  # a token absent from the corpus
    index = build(tok, w, idf, "uint8")
    for query in ["[CLS] [SEP] [MASK]", "\u2603\u2603", "zebra"]:
        with pytest.warns(NoKnownTermsWarning):
            ids, scores = index.search(query, k=5)
        assert ids == [] and scores.shape == (0,)
    for bad in ["", "   \n"]:
        with pytest.raises(EmptyInputError):
            index.search(bad)


def test_save_load_round_trip_and_checks(tok, tmp_path):
    w, idf = random_corpus(tok, seed=5)
    index = build(tok, w, idf, "uint8")
    index.save(tmp_path / "ix", model_fingerprint="abc")
    loaded = SparseIndex.load(tmp_path / "ix", tokenizer=tok, model_fingerprint="abc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for text in QUERIES:
            a, sa = index.search(text, 7)
            b, sb = loaded.search(text, 7)
            assert a == b and np.array_equal(sa, sb)
            assert loaded.postings_touched(text) == index.postings_touched(text) > 0
    with pytest.raises(IndexFormatError, match="model"):
        SparseIndex.load(tmp_path / "ix", tokenizer=tok, model_fingerprint="other")

    class OtherVocab:
        def __len__(self):
            return 5

        def convert_ids_to_tokens(self, ids):
            return [f"x{i}" for i in ids]

    with pytest.raises(IndexFormatError, match="vocabulary"):
        SparseIndex.load(tmp_path / "ix", tokenizer=OtherVocab())


def test_single_text_encoder_matches_the_tokenizer_call(tok):
    from jaxir.text import single_text_encoder

    encode = single_text_encoder(tok)
    texts = QUERIES + ["Café naïve façade — résumé", "x" * 3000, "[CLS] a [SEP] b [MASK]",
                       "\u2603 emoji \U0001F600 and CJK \u4e2d\u6587", "  padded   spaces  "]
    for text in texts:
        assert encode(text) == tok(text, add_special_tokens=False)["input_ids"]
