"""PLAID on a synthetic clustered corpus: agreement with exhaustive MaxSim, k results, IVF, I/O,
work counters, threads."""
import dataclasses
import tracemalloc

import numpy as np
import pytest

from jaxir.errors import EmptyInputError, IndexFormatError
from jaxir.index import exact, plaid
from jaxir.index.codec import fit_codec_numpy, normalize, unpack_bits
from jaxir.index.plaid import PlaidIndex, PlaidParams, num_sample_docs
from jaxir.index.plaid_builder import PlaidIndexBuilder
from jaxir.index.plaid_kernels import kept_codes
from jaxir.index.plaid_stats import STAGES

DIM, TOPICS = 32, 48


def topic_centers(seed=0):
    return normalize(np.random.default_rng(seed).normal(size=(TOPICS, DIM)).astype(np.float32))


def make_docs(rng, centers, n_docs, min_len=4, max_len=30, noise=0.3):
    """Each doc mixes 2 topics: tokens = topic centre + noise, normalised."""
    lens = rng.integers(min_len, max_len + 1, n_docs)
    topics = rng.integers(0, TOPICS, (n_docs, 2))
    owner = np.repeat(np.arange(n_docs), lens)
    tok_topic = topics[owner, rng.integers(0, 2, len(owner))]
    noise_v = noise * rng.normal(size=(len(owner), DIM)).astype(np.float32) / np.sqrt(DIM) * 3
    toks = normalize(centers[tok_topic] + noise_v)
    return np.split(toks, np.cumsum(lens)[:-1])


def make_query(rng, centers, lq=16, noise=0.25):
    topics = rng.integers(0, TOPICS, 2)
    q = centers[rng.choice(topics, lq)] + noise * 3 * rng.normal(size=(lq, DIM)) / np.sqrt(DIM)
    return normalize(q.astype(np.float32))


@pytest.fixture(scope="module")
def corpus():
    centers = topic_centers()
    docs = make_docs(np.random.default_rng(1), centers, 2500)
    tokens = np.concatenate(docs)
    sample = tokens[np.random.default_rng(2).choice(len(tokens), 12000, replace=False)]
    codec = fit_codec_numpy(sample, 512, 2, seed=0)
    builder = PlaidIndexBuilder(codec)
    for s in range(0, len(docs), 300):
        builder.add(docs[s:s + 300], [f"d{i}" for i in range(s, min(s + 300, len(docs)))])
    return centers, docs, builder.finish()


def test_top10_agrees_with_exhaustive_maxsim(corpus):
    centers, _, index = corpus
    overlaps = []
    for i in range(20):
        q = make_query(np.random.default_rng(300 + i), centers)
        scores, pids = index.search(q, 10)
        all_scores = exact.exhaustive_scores(index, q)
        _, want_pids = exact.top_k(all_scores, np.arange(index.num_docs), 10)
        overlaps.append(len(set(pids) & set(want_pids)) / 10)
        # Stage 4 is exact: the scores of returned docs are their exhaustive scores.
        np.testing.assert_allclose(scores, all_scores[pids], rtol=1e-5, atol=1e-5)
        assert np.all(np.diff(scores) <= 0)
    assert np.mean(overlaps) >= 0.95, overlaps
    s_ex, p_ex = exact.exhaustive_search(index, q, 10)
    np.testing.assert_array_equal(p_ex, want_pids)


def test_exhaustive_over_decompressed_equals_float64_reference(corpus):
    centers, docs, index = corpus
    q = make_query(np.random.default_rng(4), centers)
    pick = np.arange(0, index.num_docs, 97)
    decoded = [index.decompress_tokens(np.arange(index.doc_offsets[d], index.doc_offsets[d + 1]))
               for d in pick]
    want = [np.sum(np.max(q.astype(np.float64) @ v.astype(np.float64).T, axis=1)) for v in decoded]
    got = exact.exhaustive_scores(index, q, block_tokens=500)[pick]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # And raw (uncompressed) MaxSim is close to the 2-bit one.
    raw = exact.maxsim_scores(q, np.concatenate(docs), index.doclens)[pick]
    raw_ref = [np.sum(np.max(q.astype(np.float64) @ docs[d].astype(np.float64).T, 1)) for d in pick]
    np.testing.assert_allclose(raw, raw_ref, rtol=1e-5)
    assert np.mean(np.abs(raw - got)) < 0.1 * np.mean(np.abs(raw))


def test_ivf_lists_are_exactly_the_docs_with_each_code(corpus):
    _, _, index = corpus
    owner = np.repeat(np.arange(index.num_docs), index.doclens)
    for c in np.random.default_rng(5).choice(len(index.codec.centroids), 40, replace=False):
        want = sorted(set(owner[index.codes == c].tolist()))
        got = index.ivf_doc_ids[index.ivf_offsets[c]:index.ivf_offsets[c + 1]].tolist()
        assert got == want


def test_always_returns_k_results(corpus):
    centers, _, index = corpus
    q = make_query(np.random.default_rng(6), centers)
    # Stingy settings: one cell, pruning nearly everything, tiny ndocs.
    for k in (1, 10, 150, 1000):
        scores, pids = index.search(q, k, ncells=1, centroid_score_threshold=0.99, ndocs=4)
        assert len(pids) == k == len(set(pids.tolist()))
    # A tiny corpus with empty docs: k = N returns every document, empty ones scoring 0.
    rng = np.random.default_rng(7)
    docs = make_docs(rng, centers, 12)
    docs[3] = docs[3][:0]
    docs[8] = docs[8][:0]
    tiny = PlaidIndexBuilder(index.codec)
    tiny.add(docs)
    small = tiny.finish()
    scores, pids = small.search(q, 12)
    assert sorted(pids.tolist()) == list(range(12))
    np.testing.assert_array_equal(scores[np.isin(pids, [3, 8])], 0.0)
    scores, pids = small.search(q, 50)  # more than N: all N
    assert len(pids) == 12


def test_batch_equals_single_and_params_defaults(corpus):
    centers, _, index = corpus
    rng = np.random.default_rng(8)
    qs = np.stack([make_query(rng, centers) for _ in range(4)])
    mask = np.ones((4, 16), bool)
    mask[1, 10:] = False
    scores, pids = index.search_batch(qs, 20, q_mask=mask)
    for b in range(4):
        s, p = index.search(qs[b], 20, q_mask=mask[b])
        np.testing.assert_array_equal(p, pids[b])
        np.testing.assert_array_equal(s, scores[b])
    assert PlaidParams.for_k(10) == PlaidParams(1, 0.5, 256)
    assert PlaidParams.for_k(100) == PlaidParams(2, 0.45, 1024)
    assert PlaidParams.for_k(2000) == PlaidParams(4, 0.4, 8000)
    assert num_sample_docs(10) == 10 and num_sample_docs(100_000) == 1 + int(16 * 3464.1016)
    with pytest.raises(EmptyInputError):
        index.search(qs[0], 5, q_mask=np.zeros(16, bool))


def test_save_load_round_trip(corpus, tmp_path):
    centers, _, index = corpus
    index.save(tmp_path / "idx", model_fingerprint="fp-1", meta={"note": "test"})
    loaded = PlaidIndex.load(tmp_path / "idx", model_fingerprint="fp-1")
    for name, arr in index.to_arrays().items():
        np.testing.assert_array_equal(loaded.to_arrays()[name], arr)
    assert loaded.doc_ids[7] == "d7" and loaded.codec.nbits == 2
    q = make_query(np.random.default_rng(9), centers)
    for a, b in zip(index.search(q, 10), loaded.search(q, 10)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(IndexFormatError):
        PlaidIndex.load(tmp_path / "idx", model_fingerprint="another-model")


def test_builder_streams_without_holding_the_float_corpus(corpus):
    centers, _, index = corpus
    n_batches, per_batch = 40, 100
    float_bytes = 0
    tracemalloc.start()
    try:
        builder = PlaidIndexBuilder(index.codec)
        for i in range(n_batches):  # batches are generated, used and dropped one at a time
            batch = make_docs(np.random.default_rng(100 + i), centers, per_batch)
            float_bytes += sum(d.nbytes for d in batch)
            builder.add(batch)
            del batch
        built = builder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert built.num_docs == n_batches * per_batch
    assert builder.nbytes < float_bytes / 3
    assert peak < float_bytes / 2, (peak, float_bytes)


def test_add_compressed_with_jax_ops_builds_the_same_index(corpus):
    import jax.numpy as jnp

    from jaxir.ops import residual

    centers, _, index = corpus
    docs = make_docs(np.random.default_rng(11), centers, 40)
    codec = index.codec
    by_numpy = PlaidIndexBuilder(codec)
    by_numpy.add(docs)
    tokens = jnp.asarray(np.concatenate(docs))
    codes, packed = residual.compress(tokens, jnp.asarray(codec.centroids),
                                      jnp.asarray(codec.cutoffs), nbits=codec.nbits)
    by_jax = PlaidIndexBuilder(codec)
    by_jax.add_compressed(np.asarray(codes), np.asarray(packed), [len(d) for d in docs])
    for name, arr in by_numpy.finish().to_arrays().items():
        np.testing.assert_array_equal(by_jax.finish().to_arrays()[name], arr, err_msg=name)
    with pytest.raises(ValueError, match="doclens"):
        by_jax.add_compressed(np.asarray(codes), np.asarray(packed), [1, 2])


def test_stage2_kept_code_scoring_equals_masked_table_and_float64(corpus):
    """Pruned centroid interaction over kept codes only == masked-table scoring == float64 loop."""
    centers, _, index = corpus
    q = make_query(np.random.default_rng(11), centers)
    s_cq = index.codec.centroids32 @ q.T  # [K, Lq], the layout stages 2-4 read
    kept = s_cq.max(axis=1) >= np.quantile(s_cq.max(axis=1), 0.9)  # prune 90 % of centroids
    pids = np.arange(index.num_docs, dtype=np.int64)
    masked = index._approx_scores(pids, np.where(kept[:, None], s_cq, plaid._PRUNED))
    fast = index._pruned_scores(pids, s_cq, kept)
    np.testing.assert_allclose(fast, masked, rtol=1e-6)
    table = np.where(kept[:, None], s_cq, plaid._PRUNED).astype(np.float64)
    ref = [table[index.codes[index.doc_offsets[d]:index.doc_offsets[d + 1]]].max(0).sum()
           if index.doclens[d] else 0.0 for d in pids]
    np.testing.assert_allclose(fast[index.doclens[pids] > 0], np.asarray(ref)[index.doclens[pids] > 0], rtol=1e-5)
    assert (fast < 0).any() and (fast > 0).any()  # some docs lost every code, some kept codes


@pytest.mark.parametrize("k, ndocs", [(10, None), (10, 64), (100, None)])
def test_work_counter_proves_plaid_economy(corpus, k, ndocs):
    """PLAID does less work than an exhaustive search, and the counter proves it: stage 4
    decompresses at most max(ndocs / 4, k) documents, and stage 1 reads exactly the IVF lists of
    each token's top-ncells centroids (recomputed here from S_cq and the CSR lists)."""
    centers, _, index = corpus
    params = index._params(k, None, None, ndocs)
    bound = max(params.ndocs // 4, k)
    assert bound < index.num_docs  # else an exhaustive search would pass too
    total = plaid.PlaidStats()
    for i in range(12):
        q = make_query(np.random.default_rng(900 + i), centers)
        one = plaid.PlaidStats()
        _, pids = index.search(q, k, ndocs=ndocs, stats=one)
        index.search(q, k, ndocs=ndocs, stats=total)
        assert one.queries == 1 and one.decompressed_docs <= bound and len(pids) == k
        assert one.decompressed_tokens >= int(index.doclens[pids].sum())  # the returned docs were decoded
        s_qc = q @ index.codec.centroids32.T
        top = np.argsort(-s_qc, axis=1, kind="stable")[:, :params.ncells]
        probed = np.unique(top)
        if one.candidates >= k:  # no widening happened: exactly the probed cells were read
            np.testing.assert_array_equal(np.sort(one.cells), probed)
        assert set(probed) <= set(one.cells.tolist())
        lists = [index.ivf_doc_ids[index.ivf_offsets[c]:index.ivf_offsets[c + 1]] for c in one.cells]
        assert one.postings_read == sum(len(x) for x in lists)
        assert one.candidates == len(np.unique(np.concatenate(lists)))
        assert one.candidates < index.num_docs
    assert total.queries == 12 and total.max_decompressed_docs <= bound
    assert total.decompressed_docs <= 12 * bound


def test_work_counter_sees_an_exhaustive_search(corpus):
    """The bound can fail: forcing every cell and every document through stage 4 breaks it."""
    centers, _, index = corpus
    stats = plaid.PlaidStats()
    n_cells = index.codec.centroids32.shape[0]
    index.search(make_query(np.random.default_rng(5), centers), 10, ncells=n_cells, ndocs=4 * index.num_docs,
                 stats=stats)
    assert stats.decompressed_docs > max(256 // 4, 10)
    assert stats.cells_probed == n_cells


@pytest.mark.parametrize("threads", [2, 5])
def test_threaded_batch_equals_one_thread_and_counts_every_query(corpus, threads):
    """Queries spread over a pool give the one-thread results bit for bit, and the work counter
    (merged under its lock) the same totals."""
    centers, _, index = corpus
    queries = np.stack([make_query(np.random.default_rng(700 + i), centers) for i in range(23)])
    one_stats, many_stats = plaid.PlaidStats(), plaid.PlaidStats()
    s1, p1 = index.search_batch(queries, 10, threads=1, stats=one_stats)
    s2, p2 = index.search_batch(queries, 10, threads=threads, stats=many_stats)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1, s2)
    fields = [f for f in dataclasses.fields(plaid.PlaidStats) if f.name not in ("cells", "seconds")]
    assert all(getattr(one_stats, f.name) == getattr(many_stats, f.name) for f in fields)
    assert many_stats.queries == 23


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(corpus, bad):
    from jaxir.errors import OptionError

    centers, _, index = corpus
    with pytest.raises(OptionError, match="threads must be an integer >= 1"):
        index.search_batch(make_query(np.random.default_rng(1), centers)[None], 10, threads=bad)


def test_kept_codes_are_the_same_from_either_side(corpus, monkeypatch):
    """Stage 2 reads kept codes from the kept cells' IVF lists or from the candidates' code
    lists, whichever is shorter; both must give the same arrays (codes ascending per doc)."""
    centers, _, index = corpus
    q = make_query(np.random.default_rng(12), centers)
    s_qc = q @ index.codec.centroids32.T
    pids = np.sort(np.random.default_rng(13).choice(index.num_docs, 700, replace=False)).astype(np.int64)
    offsets, lens, codes = index._distinct_codes
    for quantile in (0.5, 0.97):  # many kept cells (doc side shorter), few (IVF side shorter)
        kept = s_qc.max(axis=0) >= np.quantile(s_qc.max(axis=0), quantile)
        ivf_side = index.ivf_offsets[np.flatnonzero(kept) + 1] - index.ivf_offsets[np.flatnonzero(kept)]
        got_codes, got_counts = kept_codes(index._distinct_codes, index.ivf_offsets, index.ivf_doc_ids,
                                            pids, kept)
        want = [codes[offsets[d]:offsets[d] + lens[d]] for d in pids]
        want = [c[kept[c]] for c in want]
        np.testing.assert_array_equal(got_counts, [len(c) for c in want])
        np.testing.assert_array_equal(got_codes, np.concatenate(want))
        assert (ivf_side.sum() < lens[pids].sum()) == (quantile == 0.97)  # both paths ran


def test_stage4_scores_without_decoding_equal_float64_maxsim(corpus):
    """(S_cq[c] + q . r) / ||C_c + r|| is the MaxSim of the decompressed vectors."""
    centers, _, index = corpus
    q = make_query(np.random.default_rng(14), centers)
    pids = np.random.default_rng(15).choice(index.num_docs, 60, replace=False)
    got = index._exact_scores(q, index.codec.centroids32 @ q.T, pids)
    c64 = index.codec.centroids.astype(np.float64)
    lookup = index.codec.weights.astype(np.float64)
    want = []
    for d in pids:
        t = np.arange(index.doc_offsets[d], index.doc_offsets[d + 1])
        buckets = unpack_bits(index.residuals[t], nbits=index.codec.nbits)
        v = c64[index.codes[t]] + lookup[buckets]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        want.append(np.max(q.astype(np.float64) @ v.T, axis=1).sum() if len(t) else 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stage_timings_are_recorded(corpus):
    centers, _, index = corpus
    stats = plaid.PlaidStats()
    index.search_batch(np.stack([make_query(np.random.default_rng(16 + i), centers) for i in range(5)]),
                       10, stats=stats, threads=1)
    ms = stats.milliseconds_per_query()
    assert list(ms) == list(STAGES)
    assert all(v >= 0 for v in ms.values()) and ms["stage4_exact"] > 0 and ms["centroid_scores"] > 0
