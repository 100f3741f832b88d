"""rank_features / JsonVectorCollection writers and readers: round trips, quantisation, errors."""
import gzip
import json

import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.export import (index_documents, read_json_vector_collection, read_rank_features,
                          token_weights, write_json_vector_collection, write_rank_features)


def random_docs(seed=0, n=6):
    rng = np.random.default_rng(seed)
    vocab = ["insulin", "##ulin", "caf\u00e9", "vitamin", "d", ".", "bone", "[CLS]"]
    docs = []
    for i in range(n):
        terms = rng.choice(len(vocab), size=rng.integers(1, 6), replace=False)
        docs.append((f"doc-{i}", {vocab[t]: float(rng.uniform(0.01, 4.0)) for t in terms},
                     f"text {i}" if i % 2 else None))
    return docs


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_rank_features_round_trip(tmp_path, suffix):
    docs = random_docs(1)
    path = tmp_path / f"docs{suffix}"
    assert write_rank_features(path, docs, field="emb") == len(docs)
    back = list(read_rank_features(path, field="emb"))
    assert [b[0] for b in back] == [d[0] for d in docs] and [b[2] for b in back] == [d[2] for d in docs]
    for (_, want, _), (_, got, _) in zip(docs, back):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[t] for t in want], list(want.values()), rtol=0)
    if suffix == ".jsonl":
        first = json.loads(path.read_text().splitlines()[0])
        assert set(first) == {"id", "emb"}  # no "text" key for a None text


def test_rank_features_drops_non_positive_weights(tmp_path):
    path = tmp_path / "d.jsonl"
    write_rank_features(path, [("a", {"x": 0.0, "y": 1.5, "z": -2.0}, None)])
    assert list(read_rank_features(path)) == [("a", {"y": 1.5}, None)]


def test_json_vector_collection_round_trip_within_quantisation(tmp_path):
    docs = random_docs(2) + [("tiny", {"bone": 0.004, "d": 1.0}, "t")]
    path = tmp_path / "c.jsonl.gz"
    write_json_vector_collection(path, docs, quantization=100)
    with gzip.open(path, "rt") as f:
        raw = [json.loads(line) for line in f]
    assert all(isinstance(v, int) and v > 0 for r in raw for v in r["vector"].values())
    assert raw[-1]["vector"] == {"d": 100} and raw[0]["contents"] == ""  # 0.004 rounds to 0
    back = {d: v for d, v, _ in read_json_vector_collection(path, quantization=100)}
    for doc_id, want, _ in docs[:-1]:
        assert back[doc_id].keys() == want.keys()
        np.testing.assert_allclose([back[doc_id][t] for t in want], list(want.values()), atol=0.005 + 1e-12)


def test_readers_name_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "vector": {"x": 3}}\n{"id": "b", "vector": {"x": 1.5}}\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        list(read_json_vector_collection(path))
    path.write_text('{"id": "a", "sparse_embedding": {"x": 1}}\nnot json\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        list(read_rank_features(path))
    with pytest.raises(DataError, match="weight"):
        write_rank_features(tmp_path / "x.jsonl", [("a", {"x": float("nan")}, None)])


def test_index_documents_inverts_the_postings():
    from jaxir.index.inverted import InvertedIndex

    rng = np.random.default_rng(3)
    vocab = [f"t{i}" for i in range(9)]
    vectors = []
    for _ in range(5):
        terms = np.sort(rng.choice(9, size=rng.integers(1, 5), replace=False))
        vectors.append((terms, rng.uniform(0.1, 3.0, size=len(terms))))
    inv = InvertedIndex.build(vectors, vocab_size=9, dtype="float32")

    class Index:
        inverted = inv
        doc_ids = np.array([f"d{i}" for i in range(5)])

    out = list(index_documents(Index(), vocab))
    assert [o[0] for o in out] == list(Index.doc_ids)
    for (terms, weights), (_, got, _) in zip(vectors, out):
        want = token_weights(terms, weights, vocab)
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[t] for t in want], list(want.values()), rtol=1e-6)
