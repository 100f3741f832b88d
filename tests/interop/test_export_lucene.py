"""`jaxir export` of a real (toy) learned-sparse index: documents with their text, queries as
impact topics and OpenSearch bodies, one --scale for both sides; and, where a pyserini venv and a
JDK >= 21 exist, the Lucene round trip (benchmarks/interop/engine_lucene.py at toy size)."""
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jaxir.cli import main
from jaxir.eval.beir import doc_text, load_beir
from jaxir.export import index_documents, quantize, token_weights
from tests.toy_beir import write_toy_beir


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(root, BEIR folder, index folder, the index opened, its vocabulary)."""
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.text import load_tokenizer
    from jaxir.text.idf import tokenizer_vocab

    root = tmp_path_factory.mktemp("export")
    data, idx = write_toy_beir(root / "data"), root / "idx"
    assert main(["index", "--method", "sparse", "--data", str(data), "--split", "train", "--out", str(idx),
                 "--doc-maxlen", "32"]) == 0
    tok = load_tokenizer()
    return root, data, idx, SparseIndex.load(idx, tokenizer=tok), tokenizer_vocab(tok)


def export(toy, *argv):
    _, data, idx, _, _ = toy
    return main(["export", "--index", str(idx), *[str(a).replace("DATA", str(data)) for a in argv]])


def read_topics(path):
    """{qid: Counter of tokens}: the query weights Lucene reads from pretokenized impact topics."""
    return {qid: Counter(tokens.split()) for qid, tokens in
            (line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines())}


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_documents_carry_their_text_and_the_scaled_weights(toy, capsys):
    root, data, _, index, vocab = toy
    out = root / "docs.jsonl"
    assert export(toy, "--format", "anserini", "--contents", "DATA", "--scale", "1000", "--out", out) == 0
    assert "exported 32 documents" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    corpus = load_beir(data, split="train").corpus
    assert [r["contents"] for r in records] == [doc_text(corpus[r["id"]]) for r in records]
    want = {d: quantize(v, 1000) for d, v, _ in index_documents(index, vocab)}
    assert {r["id"]: r["vector"] for r in records} == want
    assert max(max(v.values()) for v in want.values()) > 255  # finer than the index's own grid at 1000
    assert export(toy, "--format", "rank_features", "--out", root / "rf.jsonl", "--field", "emb") == 0
    first = json.loads((root / "rf.jsonl").read_text().splitlines()[0])
    assert set(first) == {"id", "emb"}  # no --contents: no text


def test_exported_queries_and_documents_score_what_jaxir_scores(toy):
    """Sum of round(q s) round(w s) / s^2 over the exported files (what Lucene computes) is jaxir's
    score within the rounding of both sides, for every hit of every query."""
    root, data, idx, index, vocab = toy
    scale = 100
    assert export(toy, "--format", "anserini", "--out", root / "d.jsonl") == 0
    assert export(toy, "--format", "anserini", "--queries", "DATA", "--split", "train", "--out", root / "t.tsv") == 0
    docs = {r["id"]: r["vector"] for r in map(json.loads, (root / "d.jsonl").read_text().splitlines())}
    topics = read_topics(root / "t.tsv")
    queries = load_beir(data, split="train").queries
    assert list(topics) == list(queries)
    for qid, text in queries.items():
        q = token_weights(*index.query_vector(text), vocab)
        assert topics[qid] == quantize(q, scale)
        ids, scores = index.search(text, 5)
        for doc_id, score in zip(ids, scores):
            common = set(q) & set(docs[doc_id])
            lucene = sum(topics[qid][t] * docs[doc_id][t] for t in common) / scale ** 2
            bound = sum(0.5 / scale * (q[t] + docs[doc_id][t] / scale) + 0.25 / scale ** 2 for t in common)
            assert abs(lucene - float(score)) <= bound + 1e-4, (qid, doc_id)


def test_opensearch_bodies_hold_the_index_query_weights(toy):
    root, data, _, index, vocab = toy
    out = root / "bodies.jsonl"
    assert export(toy, "--format", "rank_features", "--queries", "DATA/queries.jsonl", "--field", "emb",
                  "--out", out) == 0
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries.jsonl").read_text().splitlines())}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        tokens = record["body"]["query"]["neural_sparse"]["emb"]["query_tokens"]
        want = token_weights(*index.query_vector(queries[record["id"]]), vocab)
        assert tokens.keys() == want.keys() and len(tokens)
        np.testing.assert_allclose(list(tokens.values()), list(want.values()), rtol=1e-6)


@pytest.mark.parametrize("argv, match", [
    (["--format", "rank_features", "--scale", "10"], "--scale does not apply to --format rank_features"),
    (["--format", "anserini", "--field", "x"], "--field does not apply to --format anserini"),
    (["--format", "anserini", "--queries", "DATA", "--split", "train", "--contents", "DATA"],
     "--contents does not apply to --queries"),
])
def test_options_that_do_not_apply_are_one_line_errors(toy, capsys, argv, match):
    root = toy[0]
    assert export(toy, *argv, "--out", root / "never.jsonl") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (root / "never.jsonl").exists()


def test_contents_from_another_corpus_is_refused(toy, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "corpus.jsonl").write_text('{"_id": "d0_0", "title": "", "text": "x"}\n')
    assert export(toy, "--format", "anserini", "--contents", other, "--out", tmp_path / "d.jsonl") == 2
    assert "no document 'd0_1', which the index holds" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --scale must be > 0
        export(toy, "--format", "anserini", "--scale", "0", "--out", tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists()


def test_queries_of_a_splade_index_are_refused(tmp_path):
    """A SPLADE index's queries come from its model, not from IDF: nothing is written."""
    from jaxir.cli_export import ExportOptions, export_queries
    from jaxir.errors import OptionError

    class Index:
        meta = {"query_encoder": "mlm"}

    with pytest.raises(OptionError, match="encoded by its model"):
        export_queries(Index(), [], "anserini", tmp_path / "t.tsv", ExportOptions(), str(tmp_path / "q.tsv"))
    assert not (tmp_path / "t.tsv").exists()


def test_the_benchmark_takes_the_first_jdk_of_21_or_later(tmp_path):
    """`java -version` parsed as the JVMs print it; a JDK 17 or 1.8 is passed over."""
    from benchmarks.interop.engine_lucene import find_java_home, java_major

    homes = {}
    for name, line in (("jdk8", 'java version "1.8.0_292"'), ("jdk17", 'openjdk version "17.0.15" 2025-04-15'),
                       ("jdk25", 'openjdk version "25.0.3" 2026-04-21 LTS'), ("jdk21", 'openjdk version "21" 2023')):
        java = tmp_path / name / "bin" / "java"
        java.parent.mkdir(parents=True)
        java.write_text(f"#!/bin/sh\necho '{line}' >&2\n")
        java.chmod(0o755)
        homes[name] = java.parent.parent
    assert [java_major(h / "bin" / "java") for h in homes.values()] == [8, 17, 25, 21]
    assert find_java_home([homes["jdk8"], homes["jdk17"], tmp_path / "none", homes["jdk21"], homes["jdk25"]]) \
        == homes["jdk21"]
    assert find_java_home([homes["jdk17"]]) is None


@pytest.mark.slow
def test_lucene_scores_the_exported_integer_dot_product(toy):
    """pyserini indexes the export and searches the topics: every Lucene score is the integer dot
    product of the exported weights, and Lucene's top 5 are jaxir's up to ties."""
    from benchmarks.harness.peer_venv import peer_python
    from benchmarks.interop.engine_lucene import find_java_home, index_command, pyserini, search_command
    from jaxir.eval.runs import read_trec

    python, home = peer_python("pyserini"), find_java_home()
    if python is None or home is None:
        pytest.skip("no pyserini venv or JDK >= 21: run `python -m benchmarks.harness.peer_venv pyserini` and install "
                    "a JDK >= 21 (benchmarks/interop/engine_lucene.py does both)")
    root, data, idx, index, _ = toy
    (root / "coll").mkdir(exist_ok=True)
    assert export(toy, "--format", "anserini", "--contents", "DATA", "--out", root / "coll" / "d.jsonl") == 0
    assert export(toy, "--format", "anserini", "--queries", "DATA", "--split", "train", "--out", root / "q.tsv") == 0
    env = {**os.environ, "JAVA_HOME": str(home), "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for argv in (index_command(root / "coll", root / "lucene"),
                 search_command(root / "lucene", root / "q.tsv", root / "lucene.trec", hits=5)):
        subprocess.run(pyserini(python, env) + argv, env=env, check=True, capture_output=True)
    docs = {r["id"]: r["vector"] for r in map(json.loads, (root / "coll" / "d.jsonl").read_text().splitlines())}
    topics, run = read_topics(root / "q.tsv"), read_trec(root / "lucene.trec")
    queries = load_beir(data, split="train").queries
    assert set(run) == set(topics)
    for qid, hits in run.items():
        for doc_id, score in hits.items():
            assert score == sum(n * docs[doc_id].get(t, 0) for t, n in topics[qid].items()), (qid, doc_id)
        ours = dict(zip(*index.search(queries[qid], 5)))
        assert len(set(hits) & set(ours)) >= 4, qid
