"""The Python API (`jaxir.load`) on every registered method with a tiny BERT, its doctests, the
README quick-start run as written, `jaxir search --query`, and the one-line errors."""
import doctest
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxir
from jaxir.cli import main
from jaxir.errors import CheckpointError, DataError, EmptyInputError, IndexFormatError, OptionError
from jaxir.retrievers import registry
from tests.tiny_hf import tiny_bert_folder

REPO = Path(__file__).resolve().parents[2]
DOCS = [{"_id": "d1", "title": "Purring", "text": "Cats purr when they are content and warm."},
        {"_id": "d2", "title": "Barking", "text": "Dogs bark at strangers walking past at night."},
        {"_id": "d3", "title": "Vitamin D", "text": "Vitamin D supplements improved bone density in adults."},
        {"_id": "d4", "title": "Insulin", "text": "Insulin resistance is linked to obesity in adults."},
        {"_id": "d5", "title": "Malaria", "text": "A malaria vaccine protected young children in a trial."},
        {"_id": "d6", "title": "Sleep", "text": "Sleep loss impairs memory and attention the next day."}]
QUERY = "does vitamin D improve bone density"


def _tiny_bert(folder, minilm_dir):
    return tiny_bert_folder(folder, minilm_dir, max_position=256)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, minilm_dir):
    """{"bert": a tiny HF folder, "cross-encoder": a tiny cross-encoder folder, "mice": a tiny MICE folder}."""
    import jax

    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.methods.mice import MiceModel
    from jaxir.methods.mice_config import MiceConfig
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer
    from jaxir.retrievers.mice import save_checkpoint as save_mice

    root = tmp_path_factory.mktemp("tiny")
    bert = _tiny_bert(root / "bert", minilm_dir)
    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=48), bert_config=BertConfig.tiny())
    CrossEncoderScorer(model, model.init(jax.random.PRNGKey(0))).save(root / "ce")
    mice = MiceModel(MiceConfig(model=str(bert), fusion_layer=1, query_maxlen=16, doc_maxlen=32))
    save_mice(root / "mice", mice.config, mice.init(jax.random.PRNGKey(0)))
    return {"bert": str(bert), "cross-encoder": str(root / "ce"), "mice": str(root / "mice")}


def _load(method, tiny):
    """`jaxir.load` of a method with a tiny model (the way a user passes one: option or checkpoint)."""
    if method == "bm25":
        return jaxir.load("bm25")
    if method in ("cross-encoder", "mice"):
        return jaxir.load(method, tiny[method])
    if method in ("sparse", "splade"):  # the embedded MiniLM: a random tiny head matches no query term
        return jaxir.load(method, doc_maxlen=32)
    return jaxir.load(method, model=tiny["bert"], doc_maxlen=32)


def test_every_registered_method_is_covered():
    assert sorted(registry.REGISTRY) == jaxir.method_names() == sorted(
        ["bm25", "dense", "colbert", "sparse", "splade", "i3", "cross-encoder", "mice", "colbert-rerank"])


@pytest.mark.parametrize("method", registry.first_stage_methods())
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_first_stage_index_search_encode(method, tiny, tmp_path):
    r = _load(method, tiny)
    assert isinstance(r, jaxir.Retriever) and not r.is_reranker
    with pytest.raises(OptionError, match="index\\(corpus, path\\) or open\\(path\\) first"):
        r.search(QUERY)
    assert r.index(iter(DOCS), tmp_path / "idx") is r and r.last_index == "built"
    hits = r.search(QUERY, k=3)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and 1 <= len(hits) <= 3
    assert all(isinstance(h, jaxir.Hit) and isinstance(h.score, float) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    by_id = {d["_id"]: d for d in DOCS}
    for h in hits:  # titles and texts come from the indexed corpus
        assert h.title == by_id[h.id]["title"] and h.text == f"{h.title} {by_id[h.id]['text']}"
    # The same hits as the registry's own searcher over the same index.
    ids, scores = r.retriever.open(tmp_path / "idx").search([QUERY], 3)[0]
    assert [h.id for h in hits] == list(ids)
    np.testing.assert_allclose([h.score for h in hits], scores, rtol=1e-6)
    # Many queries, and a mapping of them; `open` reads the index back with its corpus.
    many = r.search([QUERY, "cats purr"], k=2)
    assert len(many) == 2 and [h.id for h in many[0]] == [h.id for h in hits[:2]]
    assert list(r.search({"q1": QUERY}, k=2)) == ["q1"]
    again = _load(method, tiny).open(tmp_path / "idx", corpus=DOCS)
    assert [(h.id, h.title) for h in again.search(QUERY, k=3)] == [(h.id, h.title) for h in hits]
    assert [h.title for h in _load(method, tiny).open(tmp_path / "idx").search(QUERY, k=3)] == [""] * len(hits)
    assert r.index(DOCS, tmp_path / "idx").last_index == "reused"
    with pytest.raises(OptionError, match="is a first stage, not a reranker"):
        r.rerank(QUERY, hits)
    _check_encode(method, r)


def _check_encode(method, r):
    texts = [QUERY, "cats purr"]
    if method == "bm25":
        with pytest.raises(OptionError, match="bm25 does not encode single texts"):
            r.encode(texts)
        return
    docs = r.encode(texts, kind="document")
    if method in ("dense", "i3"):
        queries = r.encode(texts)
        assert queries.shape == (2, 32) and docs.shape == (2, 32) and queries.dtype == np.float32
        np.testing.assert_allclose(r.encode(QUERY), queries[0], rtol=1e-5, atol=1e-6)
    elif method == "colbert":
        queries = r.encode(texts)
        assert queries.shape[0] == 2 and queries.shape[2] == docs[0].shape[1] and len(docs) == 2
    else:  # sparse / splade: {token: weight} per text, highest first
        assert len(docs) == 2 and all(isinstance(t, str) and w > 0 for t, w in docs[0].items())
        assert list(docs[0].values()) == sorted(docs[0].values(), reverse=True)
        if method == "sparse":
            with pytest.raises(OptionError, match="sparse encodes no queries"):
                r.encode(texts)
        else:
            assert len(r.encode(texts)) == 2
    with pytest.raises(OptionError, match="encode kind 'passage'"):
        r.encode(texts, kind="passage")
    with pytest.raises(EmptyInputError, match="query 2 is empty"):
        r.encode([QUERY, " "])


@pytest.mark.parametrize("method", registry.rerank_methods())
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_rerankers_rerank_first_stage_hits(method, tiny, tmp_path):
    first = jaxir.load("bm25").index(DOCS, tmp_path / "bm25")
    hits = first.search("vitamin D for adults and children at night", k=4)
    assert len(hits) == 4
    r = _load(method, tiny)
    assert r.is_reranker
    with pytest.raises(OptionError, match="is a reranker: search with a first stage"):
        r.search(QUERY)
    if method == "cross-encoder":
        with pytest.raises(OptionError, match="keeps no index"):
            r.index(DOCS, tmp_path / "ce-index")
    elif method == "colbert-rerank":  # reads token vectors from a ColBERT index
        with pytest.raises(OptionError, match="reranks from an index"):
            r.rerank(QUERY, hits)
        r.index(DOCS, tmp_path / "colbert")
    reranked = r.rerank(QUERY, hits)
    assert sorted(h.id for h in reranked) == sorted(h.id for h in hits)
    assert [h.rank for h in reranked] == [1, 2, 3, 4]
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    assert all(h.title == {d["_id"]: d["title"] for d in DOCS}[h.id] for h in reranked)
    # The reranker's own scores of the same candidates, in the candidates' order.
    reranker = r._open_reranker()
    docs = [h.id if getattr(reranker, "takes_doc_ids", False) else h.text for h in hits]
    want = reranker.rerank_many([QUERY], [docs], [[h.score for h in hits]])[0]
    got = {h.id: h.score for h in reranked}
    np.testing.assert_allclose([got[h.id] for h in hits], want, rtol=1e-5, atol=1e-6)
    assert len(r.rerank(QUERY, hits, k=2)) == 2
    if method == "mice":  # over stored states too: candidates by id
        r.index(DOCS, tmp_path / "states")
        by_state = r.rerank(QUERY, [h.id for h in hits])
        assert sorted(h.id for h in by_state) == sorted(h.id for h in hits)
    if method != "colbert-rerank":  # rerankers of texts also take plain strings (ids: positions)
        texts = [d["text"] for d in DOCS[:3]]
        plain = jaxir.load(method, tiny[method]).rerank(QUERY, texts)
        assert sorted(h.id for h in plain) == [0, 1, 2] and all(h.title == "" for h in plain)
        with pytest.raises(DataError, match="candidate 1 \\('d1'\\) has no text"):
            jaxir.load(method, tiny[method]).rerank(QUERY, [{"_id": "d1"}])
    with pytest.raises(EmptyInputError, match="the query is empty"):
        r.rerank("  ", hits)
    if method == "colbert-rerank":  # ColBERT's encoders
        assert r.encode(QUERY).ndim == 2 and len(r.encode([QUERY], kind="document")) == 1
    else:
        with pytest.raises(OptionError, match=f"{method} does not encode single texts"):
            r.encode(QUERY)


def test_an_api_index_of_a_beir_folder_is_accepted_by_jaxir_eval(tmp_path, capsys):
    """index() records the corpus fingerprint as the CLI does: `jaxir eval --index` takes it
    without --allow-corpus-mismatch, and `jaxir search --query` prints its hits with titles."""
    from tests.toy_beir import write_toy_beir

    data = write_toy_beir(tmp_path / "toy")
    r = jaxir.load("bm25", k1=1.2).index(str(data), tmp_path / "bm25")
    hit = r.search("does insulin resistance in obese adults?", k=1)[0]
    assert hit.id.startswith("d0_") and hit.title == ""  # the toy corpus has no titles
    out = tmp_path / "r.json"
    assert main(["eval", "--method", "bm25", "--index", str(tmp_path / "bm25"), "--data", str(data),
                 "--split", "train", "--output-json", str(out)]) == 0
    assert "reused the bm25 index" in capsys.readouterr().err
    fresh = tmp_path / "fresh.json"  # the same figures as an index the eval builds itself
    assert main(["eval", "--method", "bm25", "--k1", "1.2", "--cache", str(tmp_path / "cache"), "--data", str(data),
                 "--split", "train", "--output-json", str(fresh)]) == 0
    assert json.loads(out.read_text())["metrics"] == json.loads(fresh.read_text())["metrics"]
    # Another corpus at open: refused, naming both.
    with pytest.raises(IndexFormatError, match="built from another corpus"):
        jaxir.load("bm25").open(tmp_path / "bm25", corpus=DOCS)


def test_search_query_prints_rank_score_id_title(tmp_path, capsys):
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": QUERY}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\n")
    idx, query = tmp_path / "idx", "vitamin D for adults"  # d3, then d4
    assert main(["index", "--method", "bm25", "--data", str(data), "--out", str(idx)]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(idx), "--query", query, "--k", "2", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "id", "title"] and len(lines) == 3
    rank, score, doc, *title = lines[1].split()
    assert (rank, doc, " ".join(title)) == ("1", "d3", "Vitamin D") and float(score) > 0
    want = jaxir.load("bm25").open(idx).search(query, k=2)
    assert [l.split()[2] for l in lines[1:]] == [h.id for h in want]
    assert [float(l.split()[1]) for l in lines[1:]] == pytest.approx([h.score for h in want], abs=1e-4)
    # --show: the text under each hit; without --data: ids, no titles, and a note where titles come from.
    assert main(["search", "--index", str(idx), "--query", query, "--k", "1", "--data", str(data), "--show"]) == 0
    assert capsys.readouterr().out.splitlines()[2].strip() == DOCS[2]["text"]
    assert main(["search", "--index", str(idx), "--query", query, "--k", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[2] == "d3" and len(captured.out.splitlines()[1].split()) == 3
    assert "--data BEIR_DIR" in captured.err
    # The TREC-file mode is unchanged.
    assert main(["search", "--index", str(idx), "--queries", str(data), "--k", "2", "--run", str(tmp_path / "r.trec")]) == 0
    assert (tmp_path / "r.trec").read_text().split()[2] == "d3"
    # Bad input: one line each, rc 2.
    for argv, message in [(["--query", ""], "--query is empty"), (["--query", "   "], "--query is empty"),
                          (["--query", "x", "--show"], "--show prints each hit's text: give --data"),
                          (["--query", "x", "--run", str(tmp_path / "x.trec")], "give one"),
                          ([], "give --query TEXT"), (["--queries", str(data)], "give --query TEXT"),
                          (["--query", "x", "--data", str(REPO / "tests" / "nonexistent")], "neither an existing folder")]:
        capsys.readouterr()
        assert main(["search", "--index", str(idx), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_search_query_on_a_model_index_takes_the_method_options(tiny, tmp_path, capsys):
    """The index's manifest names the method; --model (a method option) loads its encoder."""
    r = jaxir.load("dense", model=tiny["bert"], doc_maxlen=32).index(DOCS, tmp_path / "dense")
    want = [h.id for h in r.search(QUERY, k=3)]
    capsys.readouterr()
    assert main(["search", "--index", str(tmp_path / "dense"), "--query", QUERY, "--k", "3",
                 "--model", tiny["bert"], "--doc-maxlen", "32"]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]] == want
    assert main(["search", "--index", str(tmp_path / "dense"), "--query", QUERY]) == 2  # MiniLM: another model
    assert "model" in capsys.readouterr().err


def test_load_errors_are_one_line(tiny, tmp_path):
    with pytest.raises(OptionError, match=re.escape(f"unknown method 'tfidf'; choose from {sorted(registry.REGISTRY)}")):
        jaxir.load("tfidf")
    with pytest.raises(OptionError, match="bm25 takes no checkpoint"):
        jaxir.load("bm25", tmp_path)
    with pytest.raises(OptionError, match="takes no option --nbits"):
        jaxir.load("dense", nbits=2)
    # A checkpoint of another method: refused by load, not at the first search.
    with pytest.raises(CheckpointError, match="cross-encoder"):
        jaxir.load("mice", tiny["cross-encoder"])
    with pytest.raises(CheckpointError, match="mice"):
        jaxir.load("cross-encoder", tiny["mice"])
    with pytest.raises(CheckpointError, match="holds a 'mice' model, not a 'colbert' one"):
        jaxir.load("colbert", tiny["mice"])
    r = jaxir.load("bm25")
    with pytest.raises(DataError, match="record 2 has no string '_id'"):
        r.index([DOCS[0], {"title": "no id"}], tmp_path / "x")
    with pytest.raises(DataError, match="duplicate id 'd1'"):
        r.index([DOCS[0], DOCS[0]], tmp_path / "x")
    with pytest.raises(DataError, match="neither an existing folder nor a BEIR dataset name"):
        r.index("cats purr", tmp_path / "x")
    r.index(DOCS, tmp_path / "idx")
    with pytest.raises(EmptyInputError, match="the query is empty"):
        r.search("")
    with pytest.raises(EmptyInputError, match="query 2 is empty"):
        r.search(["cats", " "])
    with pytest.raises(OptionError, match="k must be a positive integer"):
        r.search("cats", k=0)
    with pytest.raises(OptionError, match="pass --force"):  # another index at that path
        jaxir.load("bm25", k1=0.5).index(DOCS, tmp_path / "idx")
    assert jaxir.load("bm25", k1=0.5).index(DOCS, tmp_path / "idx", force=True).last_index == "built"


def test_import_jaxir_loads_no_jax_and_exports_the_curated_api():
    code = ("import sys, jaxir\n"
            "assert sorted(jaxir.__all__) == ['Hit', 'Retriever', 'evaluate', 'format_hits', 'load', 'load_beir', 'method_names']\n"
            "names = [getattr(jaxir, n) for n in jaxir.__all__]\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch', 'optax'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxir.nope  # noqa: B018


def test_api_doctests():
    import jaxir.api

    result = doctest.testmod(jaxir.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0


def _readme_quickstart() -> tuple[str, str]:
    """(code, printed output) of the README's quick-start: the python block and the block after it."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start (Python)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    code = next(body for lang, body in blocks if lang == "python")
    output = next(body for lang, body in blocks if lang == "text")
    return code, output


def test_readme_quickstart_prints_what_the_readme_shows(tmp_path, scifact_dir):
    """The quick-start run as written (from a copy of the repository layout: runs/ and
    ../shared/data are where the README says), its output compared line for line."""
    code, output = _readme_quickstart()
    assert len(code.splitlines()) + len(output.splitlines()) <= 45  # one screen
    work = tmp_path / "repo"
    (tmp_path / "shared" / "data" / "beir").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "beir" / "scifact").symlink_to(scifact_dir)
    work.mkdir()
    run = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == output.splitlines()
