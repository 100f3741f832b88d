"""IDF tables: formula against a float64 loop, df counting, idf.json round trip, vocabulary checks."""
import json
import math

import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.data.idf_file import build_idf_file
from jaxir.text.idf import (MISSING_IDF, compute_idf, document_frequencies, load_idf, save_idf,
                            tokenizer_vocab, vocab_fingerprint)

VOCAB = [f"tok{i}" for i in range(12)]


def reference_idf(docs, vocab_size):
    n = len(docs)
    out = np.zeros(vocab_size)
    for t in range(vocab_size):
        df = sum(t in set(d) for d in docs)
        out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else MISSING_IDF
    return out


def test_idf_matches_float64_reference_on_random_corpus():
    rng = np.random.default_rng(7)
    docs = [list(rng.integers(0, 12, size=rng.integers(1, 9))) for _ in range(23)]
    np.testing.assert_allclose(compute_idf(docs, 12), reference_idf(docs, 12), rtol=1e-6)


def test_df_counts_a_token_once_per_document_across_chunks():
    docs = [[3, 3, 3, 5], [5], [], [3, 7, 7]]
    df, n = document_frequencies(iter(docs), 8, chunk=1)
    assert n == 4 and df.tolist() == [0, 0, 0, 2, 0, 2, 0, 1]
    idf = compute_idf(docs, 8)
    assert idf[0] == MISSING_IDF and idf[7] > idf[3] > 0  # rarer -> larger


def test_bad_token_ids_and_empty_corpus_are_errors():
    with pytest.raises(DataError, match="document 1"):
        compute_idf([[1], [12]], 12)
    with pytest.raises(DataError, match="zero documents"):
        compute_idf([], 12)


def test_idf_json_round_trip_and_missing_policy(tmp_path):
    idf = np.zeros(12, np.float32)
    idf[[1, 4, 9]] = [0.25, 1.5, 3.0]
    path = save_idf(tmp_path / "idf.json", idf, VOCAB, n_docs=10)
    table = json.loads(path.read_text())
    assert table == {"tok1": 0.25, "tok4": 1.5, "tok9": 3.0}  # OpenSearch-style flat object
    np.testing.assert_array_equal(load_idf(path, VOCAB), idf)
    # A flat file from elsewhere (no sidecar) loads too; absent tokens follow the policy.
    (tmp_path / "plain.json").write_text(json.dumps({"tok2": 2.0, "tok3": 0.5}))
    got = load_idf(tmp_path / "plain.json", VOCAB, missing_idf=1.0)
    assert got[2] == 2.0 and got[3] == 0.5 and got[0] == 1.0


def test_wrong_vocabulary_is_rejected(tmp_path):
    path = save_idf(tmp_path / "idf.json", np.ones(12, np.float32), VOCAB)
    other = VOCAB[:-1] + ["something_else"]
    with pytest.raises(DataError, match="another vocabulary"):
        load_idf(path, other)  # sidecar fingerprint differs
    (tmp_path / "foreign.json").write_text(json.dumps({f"Word{i}": 1.0 for i in range(20)}))
    with pytest.raises(DataError, match="unknown to this tokenizer"):
        load_idf(tmp_path / "foreign.json", VOCAB)
    (tmp_path / "bad.json").write_text(json.dumps({"tok1": "x"}))
    with pytest.raises(DataError, match="tok1"):
        load_idf(tmp_path / "bad.json", VOCAB)
    assert vocab_fingerprint(VOCAB) != vocab_fingerprint(other)


def write_beir(folder, texts):
    folder.mkdir()
    lines = [json.dumps({"_id": f"d{i}", "title": "", "text": t}) for i, t in enumerate(texts)]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "insulin"}) + "\n")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")


def test_build_idf_file_counts_wordpieces_of_a_beir_corpus(tmp_path):
    from jaxir.text import load_tokenizer

    texts = ["Insulin resistance and insulin.", "The insulin pump.", "Bone density", "the end"]
    write_beir(tmp_path / "mini", texts)
    path, n_docs = build_idf_file(tmp_path / "mini", tmp_path / "idf.json")
    tok = load_tokenizer()
    idf = load_idf(path, tokenizer_vocab(tok))
    assert n_docs == 4
    expected = {"insulin": 2, "the": 2, "bone": 1, "resistance": 1}
    for token, df in expected.items():
        t = tok.convert_tokens_to_ids(token)
        assert idf[t] == pytest.approx(math.log(1 + (4 - df + 0.5) / (df + 0.5)), rel=1e-6)
    assert idf[tok.convert_tokens_to_ids("vitamin")] == MISSING_IDF
    assert (idf > 0).sum() == len(set(sum(tok(texts, add_special_tokens=False)["input_ids"], [])))
