"""rank_features / JsonVectorCollection writers and readers, impact topics and neural_sparse bodies:
round trips, quantisation, errors."""
import gzip
import json
from collections import Counter

import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.export import (index_documents, index_queries, quantize, read_json_vector_collection,
                          read_rank_features, token_weights, write_impact_queries, write_json_vector_collection,
                          write_neural_sparse_queries, write_rank_features)


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
    write_json_vector_collection(path, docs, scale=100)
    with gzip.open(path, "rt") as f:
        raw = [json.loads(line) for line in f]
    assert all(isinstance(v, int) and v > 0 for r in raw for v in r["vector"].values())
    assert raw[-1]["vector"] == {"d": 100} and raw[0]["contents"] == ""  # 0.004 rounds to 0
    back = {d: v for d, v, _ in read_json_vector_collection(path, scale=100)}
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


def test_quantize_rounds_scales_and_drops_zeros():
    assert quantize({"a": 1.234, "b": 0.004, "c": 0.006, "d": -1.0}, 100) == {"a": 123, "c": 1}
    assert quantize({"a": 1.234}, 1000) == {"a": 1234}
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            quantize({"a": 1.0}, bad)


def test_documents_and_queries_share_the_scale(tmp_path):
    """The same weight becomes the same integer on both sides, at any scale."""
    vector = {"insulin": 1.2345, "##ulin": 0.0441}
    for scale in (10, 100, 1000):
        write_json_vector_collection(tmp_path / "d.jsonl", [("d", vector, None)], scale=scale)
        write_impact_queries(tmp_path / "q.tsv", [("q", vector)], scale=scale)
        doc = json.loads((tmp_path / "d.jsonl").read_text())["vector"]
        qid, tokens = (tmp_path / "q.tsv").read_text().rstrip("\n").split("\t")
        assert qid == "q" and doc == dict(Counter(tokens.split())) == quantize(vector, scale)
    assert doc == {"insulin": 1234, "##ulin": 44}


def test_impact_queries_repeat_each_token_by_its_integer_weight(tmp_path):
    path = tmp_path / "topics.tsv.gz"
    queries = [("1", {"bone": 2.0, "d": 0.31, "[CLS]": 0.001}), ("x y", {"caf\u00e9": 0.06}),
               ("3", {"bone": 0.004}), ("4", {})]
    written, skipped = write_impact_queries(path, queries, scale=10)
    assert (written, skipped) == (2, ["3", "4"])  # nothing rounds above 0 at scale 10: left out
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines == ["1\t" + " ".join(["bone"] * 20 + ["d"] * 3), "x y\tcaf\u00e9"]


def test_impact_queries_refuse_what_a_topic_reader_would_misread(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("kept\n")
    for queries, match in (([("a\tb", {"x": 1.0})], "tab or a line break"),
                           ([("a", {"two words": 1.0})], "holds white space"),
                           ([("", {"x": 1.0})], "query id must be a non-empty string"),
                           ([("a", {"x": float("inf")})], "query 'a' token 'x' has weight inf")):
        with pytest.raises(DataError, match=match):
            write_impact_queries(path, queries)
        assert path.read_text() == "kept\n"  # nothing written over the previous file
    with pytest.raises(ValueError, match="scale"):
        write_impact_queries(path, [("a", {"x": 1.0})], scale=0)


def test_neural_sparse_bodies_hold_the_positive_float_weights(tmp_path):
    path = tmp_path / "bodies.jsonl"
    assert write_neural_sparse_queries(path, [("q1", {"insulin": 6.125, "x": 0.0}), ("q2", {})], field="emb") == 2
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first == {"id": "q1", "body": {"query": {"neural_sparse": {"emb": {"query_tokens": {"insulin": 6.125}}}}}}
    assert second["body"]["query"]["neural_sparse"]["emb"]["query_tokens"] == {}


def test_index_queries_weight_tokens_as_the_index_does():
    vocab = ["[PAD]", "bone", "d", "vitamin"]

    class Index:
        def query_vector(self, text):
            ids = np.array(sorted({vocab.index(w) for w in text.split()}))
            return ids, np.float32([0.5, 1.25, 2.0, 3.0])[ids]

    got = list(index_queries(Index(), vocab, {"q1": "vitamin d", "q2": "bone bone"}))
    assert got == [("q1", {"d": 2.0, "vitamin": 3.0}), ("q2", {"bone": 1.25})]
