"""SparseRetriever build/search on the real MiniLM backbone: scoring vocabulary and windows."""
import numpy as np
import pytest

from jaxir.retrievers.sparse import SparseRetriever

DOCS = ["Insulin resistance is linked to obesity in the adult population.",
        "Bone density improved after vitamin D and calcium supplements.",
        "The trial randomized adults with insulin resistance to metformin or placebo."]


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_min_idf_leaves_low_idf_terms_unstored_and_unscored(tmp_path):
    """Terms at or below min_idf have no postings and no query weight; the rest is unchanged."""
    ids = ["a", "b", "c"]
    base = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32)
    floor = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32, min_idf=0.6)
    full = base.open(base.build(ids, DOCS, tmp_path / "full")).index
    cut = floor.open(floor.build(ids, DOCS, tmp_path / "cut")).index
    # 3 docs: df 1 -> idf 1.10; df 2 ("insulin", "resistance") -> 0.47
    counts = lambda ix: np.diff(ix.inverted.offsets)
    low = np.flatnonzero((full.idf > 0) & (full.idf <= 0.6))
    assert len(low) and counts(full)[low].sum() > 0
    assert counts(cut)[low].sum() == 0 and (cut.idf[low] == 0).all()
    high = np.flatnonzero(full.idf > 0.6)
    np.testing.assert_array_equal(counts(cut)[high], counts(full)[high])
    np.testing.assert_array_equal(cut.idf[high], full.idf[high])
    with pytest.warns(UserWarning, match="no token with an IDF weight"):
        assert cut.search("insulin resistance", 3)[0] == []  # only low-idf terms: nothing to score
    assert full.search("obesity", 3)[0][0] == cut.search("obesity", 3)[0][0] == "a"


def test_long_documents_are_indexed_past_max_length(tmp_path):
    """A term beyond the first window is found with windows, lost without."""
    long_doc = "Obesity raises the risk of insulin resistance. " * 12 + "Pterodactyl."
    ids, docs = ["long", "other"], [long_doc, DOCS[1]]
    one = SparseRetriever(progress=False, batch_size=2, doc_maxlen=32, doc_windows=1)
    many = SparseRetriever(progress=False, batch_size=2, doc_maxlen=32, doc_windows=8)
    cut = one.open(one.build(ids, docs, tmp_path / "one")).index
    whole = many.open(many.build(ids, docs, tmp_path / "many")).index
    assert len(whole.search("pterodactyl", 2)[0]) and whole.search("pterodactyl", 2)[0][0] == "long"
    with pytest.warns(UserWarning, match="no query term has postings"):
        assert len(cut.search("pterodactyl", 2)[0]) == 0


def test_query_time_min_idf_drops_the_same_terms_as_build_time(tmp_path):
    ids = ["a", "b", "c"]
    base = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32)
    path = base.build(ids, DOCS, tmp_path / "full")
    late = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32, min_idf=0.6).open(path).index
    early = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32, min_idf=0.6)
    early = early.open(early.build(ids, DOCS, tmp_path / "cut")).index
    for q in ["insulin resistance obesity", "vitamin D adults trial", "metformin insulin"]:
        assert late.query_vector(q)[0].tolist() == early.query_vector(q)[0].tolist()
        got, want = late.search(q, 3), early.search(q, 3)
        assert got[0] == want[0]
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_stats_count_postings_and_nonzeros(tmp_path):
    r = SparseRetriever(progress=False, batch_size=4, doc_maxlen=32)
    searcher = r.open(r.build(["a", "b", "c"], DOCS, tmp_path / "ix"))
    index = searcher.index
    stats = searcher.stats(["insulin obesity", "vitamin"])
    terms = [index.query_vector(q)[0] for q in ["insulin obesity", "vitamin"]]
    counts = np.diff(index.inverted.offsets)
    assert stats["postings_per_query"] == np.mean([counts[t].sum() for t in terms]) > 0
    assert stats["nonzeros_per_doc"] == counts.sum() / 3
