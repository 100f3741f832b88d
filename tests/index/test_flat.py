"""Exact dense MIPS against a float64 NumPy brute force on fresh random data."""
import numpy as np
import pytest

from jaxir.errors import IndexFormatError
from jaxir.index.flat import FlatIndex, search_dense


def _reference(queries, docs, k):
    """float64 scores; order (score desc, index asc) via lexsort."""
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    order = np.stack([np.lexsort((np.arange(len(docs)), -row))[:k] for row in scores])
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("block_size", [64, 1000, 5000])
def test_matches_float64_brute_force(block_size):
    rng = np.random.default_rng(block_size)
    queries = rng.standard_normal((9, 24)).astype(np.float32)
    docs = rng.standard_normal((1000, 24)).astype(np.float32)
    scores, indices = search_dense(queries, docs, 17, block_size=block_size)
    ref_scores, ref_indices = _reference(queries, docs, 17)
    assert scores.dtype == np.float32 and indices.dtype == np.int64 and scores.shape == (9, 17)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


def test_ties_go_to_the_lower_index_across_blocks():
    rng = np.random.default_rng(1)
    # Small integers: every dot product is exact in float32, so equal rows tie exactly.
    base = rng.integers(-2, 3, (5, 8)).astype(np.float32)
    docs = base[rng.integers(0, 5, 300)]
    queries = rng.integers(-2, 3, (4, 8)).astype(np.float32)
    _, indices = search_dense(queries, docs, 40, block_size=7)
    _, ref_indices = _reference(queries, docs, 40)
    np.testing.assert_array_equal(indices, ref_indices)


def test_memmap_and_float16_docs(tmp_path):
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((3, 16)).astype(np.float32)
    docs = rng.standard_normal((500, 16)).astype(np.float16)
    np.save(tmp_path / "docs.npy", docs)
    mapped = np.load(tmp_path / "docs.npy", mmap_mode="r")
    scores, indices = search_dense(queries, mapped, 5, block_size=99)
    ref_scores, ref_indices = _reference(queries, docs, 5)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


def test_k_larger_than_corpus_pads_with_minus_one_and_minus_inf():
    rng = np.random.default_rng(3)
    queries, docs = rng.standard_normal((2, 4)), rng.standard_normal((6, 4))
    scores, indices = search_dense(queries, docs, 9, block_size=4)
    ref_scores, ref_indices = _reference(queries, docs, 6)
    np.testing.assert_array_equal(indices[:, :6], ref_indices)
    np.testing.assert_allclose(scores[:, :6], ref_scores, rtol=1e-5)
    assert (indices[:, 6:] == -1).all() and np.isneginf(scores[:, 6:]).all()


def test_bad_inputs_raise():
    q, d = np.zeros((2, 4), np.float32), np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="dim"):
        search_dense(q, np.zeros((5, 3), np.float32), 1)
    with pytest.raises(ValueError, match="2-D float"):
        search_dense(q[0], d, 1)
    with pytest.raises(ValueError, match="2-D float"):
        search_dense(q, d.astype(np.int32), 1)
    with pytest.raises(ValueError, match="k must"):
        search_dense(q, d, 0)
    with pytest.raises(ValueError, match="NaN"):
        search_dense(q, np.full((5, 4), np.nan, np.float32), 1)


def test_flat_index_save_load_search(tmp_path):
    rng = np.random.default_rng(4)
    emb = rng.standard_normal((50, 8)).astype(np.float32)
    ids = [f"d{i}" for i in range(50)]
    FlatIndex(emb, ids).save(tmp_path / "flat", model_fingerprint="m1", meta={"dim": 8})
    index = FlatIndex.load(tmp_path / "flat", model_fingerprint="m1")
    assert isinstance(index.embeddings, np.memmap)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    got_ids, scores = index.search(queries, 4)
    _, ref = _reference(queries, emb, 4)
    assert got_ids == [[ids[i] for i in row] for row in ref]
    with pytest.raises(IndexFormatError, match="m1.*m2"):
        FlatIndex.load(tmp_path / "flat", model_fingerprint="m2")
    with pytest.raises(ValueError, match="doc ids"):
        FlatIndex(emb, ids[:-1])
