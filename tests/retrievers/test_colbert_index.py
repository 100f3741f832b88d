"""Streaming ColBERT index builder + retriever glue, on real SciFact documents with real MiniLM."""
import gc
import weakref

import jax
import numpy as np
import pytest

from jaxir.errors import IndexFormatError
from jaxir.eval.beir import load_beir
from jaxir.index import exact
from jaxir.index.codec import fit_codec_numpy, normalize
from jaxir.index.plaid import PlaidIndex
from jaxir.methods.colbert_config import ColBERTConfig
from jaxir.index.plaid_update import FP16_ARRAY
from jaxir.retrievers.colbert_build import compress_stream, fit_codec, sample_doc_indices
from jaxir.retrievers.colbert import ColBERTRetriever, save_checkpoint

N_DOCS = 60


def test_sample_size_and_centroid_count():
    picks = sample_doc_indices(100_000, seed=3)
    assert len(picks) == 1 + int(16 * np.sqrt(120 * 100_000)) and len(np.unique(picks)) == len(picks)
    assert len(sample_doc_indices(50, seed=3)) == 50
    rng = np.random.default_rng(0)
    sample = normalize(rng.normal(size=(400, 16)).astype(np.float32))
    # 16 * sqrt(1000) = 506 -> K = 256 (power of two below), fewer than the 380 training vectors.
    codec = fit_codec(sample, n_embeddings_est=1000, nbits=2, seed=0)
    assert codec.centroids.shape == (256, 16) and codec.centroids.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(codec.centroids.astype(np.float32), axis=1), 1, atol=2e-3)
    # A huge estimate is clamped to the 380 vectors left after the 5% hold-out.
    assert fit_codec(sample, n_embeddings_est=10**8, nbits=1).centroids.shape[0] == 380


def test_compress_stream_holds_one_float_batch_at_a_time():
    rng = np.random.default_rng(1)
    codec = fit_codec_numpy(normalize(rng.normal(size=(500, 16)).astype(np.float32)), 32, 2)
    alive, yielded = [], []

    def batches():
        for b in range(6):
            gc.collect()
            # Every float array handed out before must be gone: the builder kept none of them.
            assert all(ref() is None for ref in alive), f"batch {b}: earlier float batches still alive"
            docs = [normalize(rng.normal(size=(int(n), 16)).astype(np.float32))
                    for n in rng.integers(0, 9, size=5)]
            alive.extend(weakref.ref(d) for d in docs)
            yielded.append(sum(len(d) for d in docs))
            yield [f"b{b}-{i}" for i in range(5)], docs
            del docs

    index = compress_stream(codec, batches())
    assert len(yielded) == 6 and index.num_docs == 30 and index.num_tokens == sum(yielded)
    assert index.doc_ids[7] == "b1-2"


@pytest.fixture(scope="module")
def scifact(scifact_dir):
    data = load_beir(scifact_dir, split="test")
    ids = data.doc_ids[:N_DOCS]
    texts = data.doc_texts()[:N_DOCS]
    # Queries whose relevant documents are among the first N_DOCS.
    queries = [data.queries[q] for q, rel in data.qrels.items() if set(rel) & set(ids)]
    return ids, texts, queries + list(data.queries.values())[:6]


@pytest.fixture(scope="module")
def built(scifact, tmp_path_factory):
    ids, texts, _ = scifact
    retriever = ColBERTRetriever(uncompressed=True, doc_maxlen=128, progress=False)
    out = retriever.build(ids, texts, tmp_path_factory.mktemp("colbert") / "index")
    return retriever, out


def test_index_loads_and_decompresses_close_to_fp16(built, scifact):
    retriever, out = built
    model, params = retriever._loaded
    index = PlaidIndex.load(out, model_fingerprint=model.fingerprint(params))
    assert index.num_docs == N_DOCS and sorted(index.doc_ids) == sorted(scifact[0])
    assert index.codec.nbits == 2 and index.residuals.shape[1] == 128 * 2 // 8
    fp16 = np.load(out / f"{FP16_ARRAY}.npy").astype(np.float32)
    decoded = index.decompress_tokens(np.arange(index.num_tokens))
    cos = np.sum(decoded * fp16, axis=1) / np.linalg.norm(fp16, axis=1)
    assert cos.mean() > 0.9 and np.quantile(cos, 0.05) > 0.8
    # Index rows are in encoding order: doc_ids + doclens still line up with the encoder output.
    row = int(np.argmax(index.doclens))
    doc = model.encode_doc_texts(params, [scifact[1][scifact[0].index(index.doc_ids[row])]],
                                 progress=False)[0]
    start = int(index.doc_offsets[row])
    np.testing.assert_allclose(fp16[start:start + len(doc)], doc, atol=2e-3)


def test_search_modes_return_k_and_plaid_matches_exhaustive(built, scifact):
    retriever, out = built
    queries = scifact[2][:8]
    plaid = retriever.open(out).search(queries, 10)
    exhaustive = ColBERTRetriever(exhaustive=True, doc_maxlen=128, progress=False).open(out).search(queries, 10)
    reference = ColBERTRetriever(uncompressed=True, doc_maxlen=128, progress=False).open(out).search(queries, 10)
    assert all(len(ids) == 10 and len(s) == 10 for ids, s in plaid + exhaustive + reference)
    assert all(np.all(np.diff(s) <= 0) for _, s in plaid)
    overlap = np.mean([len(set(a[0]) & set(b[0])) / 10 for a, b in zip(plaid, exhaustive)])
    agree = np.mean([len(set(a[0]) & set(b[0])) / 10 for a, b in zip(exhaustive, reference)])
    assert overlap >= 0.8 and agree >= 0.7, (overlap, agree)
    # Exhaustive scores are exact MaxSim over the decompressed vectors.
    model, params = retriever._loaded
    index = PlaidIndex.load(out)
    q = model.encode_query_texts(params, queries[:1], progress=False)[0]
    scores = exact.exhaustive_scores(index, q)
    rows = [list(index.doc_ids).index(d) for d in exhaustive[0][0]]
    np.testing.assert_allclose(exhaustive[0][1], scores[rows], rtol=1e-5)
    assert len(retriever.open(out).search(queries[:1], N_DOCS + 5)[0][0]) == N_DOCS


def test_index_of_other_weights_is_refused(built, tmp_path):
    retriever, out = built
    model, params = retriever._loaded
    other = dict(params, projection=model.init(jax.random.PRNGKey(7))["projection"])
    ckpt = save_checkpoint(tmp_path / "ckpt", ColBERTConfig(doc_maxlen=128), other)
    with pytest.raises(IndexFormatError, match="built with model"):
        ColBERTRetriever(checkpoint=str(ckpt)).open(out)
    same = save_checkpoint(tmp_path / "same", ColBERTConfig(doc_maxlen=128), params)
    assert ColBERTRetriever(checkpoint=str(same), progress=False).open(out).search(["vitamin d"], 3)
    with pytest.raises(IndexFormatError, match=FP16_ARRAY):
        ColBERTRetriever(uncompressed=True, progress=False).open(_plain_index(model, params, tmp_path))


def _plain_index(model, params, tmp):
    """A 3-document index without the fp16 copy (nbits 1), opened with uncompressed=True."""
    from jaxir.retrievers.colbert_build import IndexOptions, build_colbert_index

    texts = ["Vitamin D and bone density.", "Insulin resistance in obesity.", "Randomized trial."]
    build_colbert_index(model, params, ["a", "b", "c"], texts, tmp / "plain",
                        IndexOptions(nbits=1, progress=False))
    return tmp / "plain"


def test_recompress_from_fp16_copy_matches_other_nbits(tmp_path):
    """An fp16-carrying index re-fitted at nbits 1 and 4 decodes close to the stored vectors (cosine)."""
    from jaxir.index.codec import ResidualCodec
    from jaxir.index.plaid import PlaidIndex
    from jaxir.index.plaid_builder import PlaidIndexBuilder
    from jaxir.index.store import save_index
    from jaxir.retrievers.colbert_build import IndexOptions, recompress_index

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 16))
    lens = rng.integers(5, 30, size=40)
    toks = np.concatenate([centres[rng.integers(0, 12, n)] + 0.3 * rng.normal(size=(n, 16)) for n in lens])
    toks = (toks / np.linalg.norm(toks, axis=1, keepdims=True)).astype(np.float16)
    docs = np.split(toks.astype(np.float32), np.cumsum(lens)[:-1])
    codec = ResidualCodec(np.eye(16, dtype=np.float16)[:8], np.zeros(1, np.float32),
                          np.array([-0.1, 0.1], np.float32), 1)
    builder = PlaidIndexBuilder(codec)
    builder.add(docs, [f"d{i}" for i in range(40)])
    src = builder.finish()
    save_index(tmp_path / "src", {**src.to_arrays(), FP16_ARRAY: toks}, method="colbert-plaid",
               model_fingerprint="fp", meta={"nbits": 1, "dim": 16})
    cos = {}
    for nbits in (1, 4):
        rep = recompress_index(tmp_path / "src", tmp_path / f"nb{nbits}", IndexOptions(nbits=nbits))
        idx = PlaidIndex.load(tmp_path / f"nb{nbits}", model_fingerprint="fp")
        assert rep.num_tokens == len(toks) and idx.doc_ids.tolist() == [f"d{i}" for i in range(40)]
        dec = idx.decompress_tokens(np.arange(len(toks)))
        cos[nbits] = float(np.mean(np.sum(dec * toks.astype(np.float32), axis=1)))
    assert cos[4] > cos[1] > 0.8  # more bits, closer vectors


def test_device_compressor_buckets_rows_and_equals_numpy_codec():
    """Token rows pad to power-of-two buckets (one compile per bucket); bytes equal the codec's."""
    from jaxir.ops import residual
    from jaxir.retrievers.colbert_build import DeviceCompressor

    rng = np.random.default_rng(5)
    codec = fit_codec_numpy(normalize(rng.normal(size=(800, 16)).astype(np.float32)), 32, 2)
    compress = DeviceCompressor(codec)
    first = None
    for n_docs in (37, 50, 61):  # 296, 400, 488 tokens: all in the 512-row bucket
        docs = [normalize(rng.normal(size=(8, 16)).astype(np.float32)) for _ in range(n_docs)]
        docs[3] = np.zeros((0, 16), np.float32)
        codes, packed, lens = compress(docs)
        want = codec.compress(np.concatenate(docs))
        np.testing.assert_array_equal(codes, want[0])
        np.testing.assert_array_equal(packed, want[1])
        assert lens.tolist() == [len(d) for d in docs] and len(codes) == lens.sum()
        first = residual.compress._cache_size() if first is None else first
    assert residual.compress._cache_size() == first  # new batch sizes, no new compile
    codes, packed, lens = compress([np.zeros((0, 16), np.float32)] * 2)
    assert codes.shape == (0,) and packed.shape == (0, 4) and lens.tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"\[n_tok, 16\]"):
        compress([np.zeros((3, 8), np.float32)])


def test_build_on_device_and_with_numpy_codec_write_identical_indexes(tmp_path):
    """build_colbert_index (tiny BERT): the JAX compress path and the NumPy one, array for array."""
    from jaxir.index.plaid import METHOD
    from jaxir.index.store import load_index
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.colbert_build import IndexOptions, build_colbert_index

    model = ColBERTModel(ColBERTConfig(dim=16, query_maxlen=16, doc_maxlen=48, batch_size=16),
                         bert_config=BertConfig.tiny())
    params = model.init(jax.random.PRNGKey(0))
    words = ("vitamin bone density insulin obesity trial protein cell gene risk dose cancer "
             "heart brain blood liver signal growth patients cohort").split()
    rng = np.random.default_rng(2)
    texts = [" ".join(rng.choice(words, size=int(n))) + "." for n in rng.integers(1, 45, size=40)]
    ids = [f"d{i}" for i in range(len(texts))]
    arrays = {}
    for on_device in (True, False):
        out = tmp_path / f"device-{on_device}"
        build_colbert_index(model, params, ids, texts, out,
                            IndexOptions(keep_fp16=True, device_compress=on_device, progress=False))
        stored = load_index(out, method=METHOD)
        arrays[on_device] = (stored.arrays, stored.meta)
    (a_dev, meta_dev), (a_np, meta_np) = arrays[True], arrays[False]
    assert sorted(a_dev) == sorted(a_np) and FP16_ARRAY in a_dev and meta_dev == meta_np
    assert len(a_dev["codes"]) > 600 and len(np.unique(a_dev["codes"])) > 8  # several batches
    for name, arr in a_np.items():
        assert a_dev[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(a_dev[name], arr, err_msg=name)


def test_colbert_rerank_scores_candidates_by_exact_maxsim_of_the_index(built, scifact):
    from jaxir.retrievers.colbert_rerank import ColBERTReranker
    from jaxir.retrievers.registry import first_stage_methods, rerank_methods

    assert "colbert-rerank" in rerank_methods() and "colbert-rerank" not in first_stage_methods()
    retriever, out = built
    model, params = retriever._loaded
    index = PlaidIndex.load(out)
    queries = scifact[2][:2]
    rng = np.random.default_rng(5)
    cands = [[str(index.doc_ids[i]) for i in rng.choice(N_DOCS, size=7, replace=False)] for _ in queries]
    encoded = model.encode_query_texts(params, queries, progress=False)
    fp16 = np.load(out / f"{FP16_ARRAY}.npy")
    for uncompressed, reference in ((True, lambda q: exact.maxsim_scores(q, fp16, index.doclens)),
                                    (False, lambda q: exact.exhaustive_scores(index, q))):
        reranker = ColBERTReranker(uncompressed=uncompressed, doc_maxlen=128, progress=False).open_reranker(out)
        got = reranker.rerank_many(queries, cands)
        for q, ids, s in zip(encoded, cands, got):
            rows = [list(index.doc_ids).index(d) for d in ids]
            np.testing.assert_allclose(s, reference(q)[rows], rtol=1e-5)
    mixed = ColBERTReranker(doc_maxlen=128, alpha=0.5, progress=False).open_reranker(out)
    s = mixed.rerank_many(queries[:1], cands[:1], [np.arange(7, 0, -1.0)])[0]
    assert s.shape == (7,) and 0 <= s.min() and s.max() <= 1
    with pytest.raises(IndexFormatError, match="no document 'nope'"):
        reranker.rerank_many(queries[:1], [["nope"]])
    with pytest.raises(ValueError, match="--index"):
        ColBERTReranker(progress=False).open_reranker(None)


def test_codec_fit_in_place_equals_the_copy_and_caps_the_kmeans_sample(monkeypatch):
    """consume=True shuffles the caller's sample in place and fits the same codec; k-means sees
    at most max_points_per_centroid * K vectors (ColBERTv2's faiss default subsampling)."""
    from jaxir.retrievers import colbert_build

    rng = np.random.default_rng(4)
    sample = normalize(rng.normal(size=(3000, 16)).astype(np.float32))
    copy_fit = fit_codec(sample, n_embeddings_est=1000, nbits=2, seed=3)
    owned = sample.copy()
    in_place = fit_codec(owned, n_embeddings_est=1000, nbits=2, seed=3, consume=True)
    for a, b in zip((copy_fit.centroids, copy_fit.cutoffs, copy_fit.weights),
                    (in_place.centroids, in_place.cutoffs, in_place.weights)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(owned, sample[np.random.default_rng(3).permutation(3000)])
    seen = []
    real = colbert_build.kmeans
    monkeypatch.setattr(colbert_build, "kmeans", lambda x, k, **kw: seen.append(len(x)) or real(x, k, **kw))
    fit_codec(sample, n_embeddings_est=1000, nbits=2, max_points_per_centroid=4)  # K = 256: 1024 points
    fit_codec(sample, n_embeddings_est=1000, nbits=2)  # 256 per centroid: all 2850 training vectors
    assert seen == [1024, 2850]
