"""BM25: formula on a toy corpus, query semantics, persistence, and bm25s parity on real SciFact."""
import gzip
import json
import math
from collections import Counter

import numpy as np
import pytest

from jaxir.errors import DataError, EmptyInputError, IndexFormatError
from jaxir.text.analysis import STOPWORDS_EN, WordAnalyzer
from jaxir.index.bm25 import BM25Index
from jaxir.index.inverted import NoKnownTermsWarning

TOY = [
    "The cat sat on the mat.",
    "Cats chase mice; a cat is quick.",
    "Dogs chase cats and the dog barks",
    "",
    "Quantum entanglement of photons, measured twice: entangled photons.",
]


def _reference_scores(docs_tokens, query_tokens, k1=1.5, b=0.75):
    """Lucene BM25 in plain Python floats, straight from the formula."""
    n = len(docs_tokens)
    avgdl = sum(map(len, docs_tokens)) / n
    df = Counter(t for doc in docs_tokens for t in set(doc))
    out = []
    for doc in docs_tokens:
        tf, s = Counter(doc), 0.0
        for t in query_tokens:  # each query occurrence counts, as in bm25s
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf[t] / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(s)
    return np.array(out)


def test_toy_scores_match_formula_and_query_semantics():
    analyze = WordAnalyzer()
    index = BM25Index.build(TOY, doc_ids=[f"t{i}" for i in range(len(TOY))], k1=1.2, b=0.6)
    tokens = [analyze(t) for t in TOY]
    for query in ["cat chase", "cats cats cat dog", "photon entangled zebra", "the mat"]:
        expected = _reference_scores(tokens, analyze(query), k1=1.2, b=0.6)
        np.testing.assert_allclose(index.score_all(query), expected, rtol=1e-6, atol=1e-7)
    assert index.score_all("cat cat")[0] == pytest.approx(2 * index.score_all("cat")[0], rel=1e-6)
    np.testing.assert_array_equal(index.score_all("cat zyzzyva"), index.score_all("cat"))
    ids, scores = index.search("dog chase", k=2)
    assert ids == ["t2", "t1"] and scores[0] > scores[1] > 0


def test_analyzer_uses_bm25s_english_stopwords():
    import bm25s.stopwords

    assert STOPWORDS_EN == frozenset(bm25s.stopwords.STOPWORDS_EN)
    assert WordAnalyzer()("The Running-dogs ran, it's a 1999 DOGS' run") == [
        "run", "dog", "ran", "1999", "dog", "run"]  # "it", "a": stopwords; "s": one char


def test_empty_inputs_and_bad_doc_ids():
    index = BM25Index.build(TOY, doc_ids=range(len(TOY)))
    for query in ["", "   \n"]:
        with pytest.raises(EmptyInputError):
            index.search(query)
    with pytest.warns(NoKnownTermsWarning):
        ids, scores = index.search("the of and zyzzyva")
    assert ids == [] and len(scores) == 0
    with pytest.raises(EmptyInputError, match="zero documents"):
        BM25Index.build([], doc_ids=[])
    with pytest.raises(DataError, match="4 doc_ids for 5"):
        BM25Index.build(TOY, doc_ids=range(4))
    with pytest.raises(DataError, match="'x' occurs 2"):
        BM25Index.build(TOY, doc_ids=["x", "x", "a", "b", "c"])


def test_save_load_round_trip(tmp_path):
    index = BM25Index.build(TOY, doc_ids=[f"é{i}" for i in range(len(TOY))])
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.params == index.params
    for query in ["cats", "entangled photons dog"]:
        assert loaded.search(query, 3)[0] == index.search(query, 3)[0]
        np.testing.assert_array_equal(loaded.score_all(query), index.score_all(query))
    manifest = json.loads((tmp_path / "bm25" / "manifest.json").read_text())
    manifest["model_fingerprint"] = "word:other-stemmer"  # as if built with another stemmer
    from jaxir.index.manifest import DIGEST, manifest_digest

    manifest[DIGEST] = manifest_digest(manifest)
    (tmp_path / "bm25" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="other-stemmer"):
        BM25Index.load(tmp_path / "bm25")


def test_wordpiece_analyzer():
    from jaxir.text import load_tokenizer

    tokenizer = load_tokenizer()
    index = BM25Index.build(TOY, doc_ids=range(len(TOY)), analyzer="wordpiece")
    assert set(index.vocab.tolist()) == {t for text in TOY for t in tokenizer.tokenize(text)}
    assert "[CLS]" not in index.vocab.tolist()
    assert index.search("entanglement", k=1)[0] == ["4"]


@pytest.fixture(scope="module")
def scifact(scifact_dir):
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    with gzip.open(scifact_dir / "queries.jsonl.gz", "rt") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels_rows = (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]
    test_ids = dict.fromkeys(row.split("\t")[0] for row in qrels_rows)
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    return texts, [d["_id"] for d in docs], [queries[q] for q in test_ids]


@pytest.mark.slow
def test_bm25s_parity_on_scifact(scifact):
    import bm25s
    import Stemmer

    texts, doc_ids, queries = scifact
    assert len(queries) == 300
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    analyze = WordAnalyzer()
    assert tokens == [analyze(t) for t in texts]  # identical token lists for both systems
    peer = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    peer.index(tokens, show_progress=False)
    ours = BM25Index.build(texts, doc_ids=doc_ids, k1=1.5, b=0.75, method="lucene")
    for query in queries[::6]:  # 50 queries: full score vectors
        expected = peer.get_scores(analyze(query))
        np.testing.assert_allclose(ours.score_all(query), expected, rtol=1e-5, atol=1e-6)
    query_tokens = [analyze(q) for q in queries]
    peer_top = peer.retrieve(query_tokens, k=10, show_progress=False, backend_selection="numpy")
    for query, peer_docs, peer_scores in zip(queries, peer_top.documents, peer_top.scores):
        ids, scores = ours.search(query, 10)
        np.testing.assert_allclose(scores, peer_scores, rtol=1e-5, err_msg=query)
        # Equal scores may come in either order (bm25s's tie order follows np.argpartition):
        # each score level must hold the same documents, except the level cut at rank 10.
        peer_ids = [doc_ids[i] for i in peer_docs]
        for level in np.unique(np.round(peer_scores[peer_scores > peer_scores[-1] + 1e-4], 4)):
            pick = lambda xs, ss: {x for x, s in zip(xs, ss) if abs(s - level) < 1e-4}  # noqa: E731
            assert pick(ids, scores) == pick(peer_ids, peer_scores), query
