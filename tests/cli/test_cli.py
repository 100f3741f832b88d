"""The CLI contract: eval JSON shape, index + search round trip, clear errors on bad input."""
import gzip
import json

import pytest

from jaxir.cli import main


@pytest.fixture(scope="module")
def small_beir(tmp_path_factory, scifact_dir):
    """A real SciFact slice: 15 test queries, their relevant docs and the first 60 docs."""
    root = tmp_path_factory.mktemp("beir") / "scifact-small"
    (root / "qrels").mkdir(parents=True)
    rows = (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]
    qids = list(dict.fromkeys(r.split("\t")[0] for r in rows))[:15]
    keep = [r for r in rows if r.split("\t")[0] in qids]
    rel_docs = {r.split("\t")[1] for r in keep}
    docs = []
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt") as f:
        for line in f:
            d = json.loads(line)
            if d["_id"] in rel_docs or len(docs) < 60:
                docs.append(line)
    (root / "corpus.jsonl").write_text("".join(docs))
    with gzip.open(scifact_dir / "queries.jsonl.gz", "rt") as f:
        (root / "queries.jsonl").write_text("".join(l for l in f if json.loads(l)["_id"] in qids))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(keep) + "\n")
    return root


@pytest.mark.parametrize("method", ["bm25", "dense"])
def test_eval_writes_contract_json(small_beir, tmp_path, method):
    out = tmp_path / "r.json"
    run = tmp_path / "r.trec"
    rc = main(["eval", "--method", method, "--data", str(small_beir), "--split", "test",
               "--output-json", str(out), "--cache", str(tmp_path / "idx"), "--run", str(run)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["dataset"] == "scifact-small" and res["split"] == "test" and res["method"] == method
    assert res["num_queries"] == 15
    assert set(res["metrics"]) == {"ndcg@10", "mrr@10", "recall@100", "map"}
    n_docs = len((small_beir / "corpus.jsonl").read_text().splitlines())
    if method == "dense":  # every doc gets a score and k=100 > corpus: recall must be exactly 1
        assert res["metrics"]["recall@100"] == pytest.approx(1.0)
    assert 0.3 < res["metrics"]["ndcg@10"] <= 1.0
    assert {"index_build_s", "search_s", "ms_per_query"} <= set(res["timing"])
    lines = run.read_text().splitlines()
    # Dense ranks the whole corpus; BM25 only docs sharing a term with the query.
    assert len(lines) == 15 * n_docs if method == "dense" else 15 * 5 <= len(lines) < 15 * n_docs


def test_index_then_search_writes_trec(small_beir, tmp_path):
    idx = tmp_path / "bm25"
    assert main(["index", "--method", "bm25", "--data", str(small_beir), "--out", str(idx)]) == 0
    run = tmp_path / "out.trec"
    assert main(["search", "--index", str(idx), "--queries", str(small_beir / "queries.jsonl"),
                 "--k", "5", "--run", str(run)]) == 0
    lines = run.read_text().splitlines()
    assert len(lines) == 15 * 5
    qid, q0, doc, rank, score, tag = lines[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "jaxir-bm25")


def test_errors_are_reported_not_raised(small_beir, tmp_path, capsys):
    assert main(["eval", "--method", "bm25", "--data", str(small_beir), "--split", "nosuch",
                 "--cache", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err
    bad = tmp_path / "q.tsv"
    bad.write_text("1\tok query\n2\t   \n")
    idx = tmp_path / "bm25"
    main(["index", "--method", "bm25", "--data", str(small_beir), "--out", str(idx)])
    assert main(["search", "--index", str(idx), "--queries", str(bad), "--run", str(tmp_path / "r")]) == 2
    assert "empty" in capsys.readouterr().err
    # An index whose manifest says another format version is refused with a clear message.
    manifest = json.loads((idx / "manifest.json").read_text())
    manifest["format_version"] = 999
    (idx / "manifest.json").write_text(json.dumps(manifest))
    assert main(["search", "--index", str(idx), "--queries", str(small_beir), "--run", str(tmp_path / "r")]) == 2
    assert "version" in capsys.readouterr().err


def test_demo_writes_table_runs_and_metrics(small_beir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(small_beir), "--methods", "bm25", "--out", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert "bm25" in table and "ndcg@10" in table
    assert json.loads((out / "bm25.test.json").read_text())["num_queries"] == 15
    assert (out / "bm25.test.trec").read_text().count("\n") >= 15
    assert table.strip() in capsys.readouterr().out


def test_tune_alpha_reports_heldout_table_with_bm25_at_zero(small_beir, tmp_path, capsys):
    import shutil

    import jax

    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.index.bm25 import BM25Index
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer
    from jaxir.recipes.cross_encoder import holdout_qids

    root = tmp_path / "with-train"
    shutil.copytree(small_beir, root)
    shutil.copy(root / "qrels" / "test.tsv", root / "qrels" / "train.tsv")
    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=48), bert_config=BertConfig.tiny())
    CrossEncoderScorer(model, model.init(jax.random.PRNGKey(0))).save(tmp_path / "ce")
    capsys.readouterr()
    assert main(["tune-alpha", "--checkpoint", str(tmp_path / "ce"), "--data", str(root),
                 "--holdout", "6", "--depth", "10", "--cache", str(tmp_path / "idx")]) in (0, None)
    report = json.loads(capsys.readouterr().out)
    table = {float(a): v for a, v in report["ndcg@10_by_alpha"].items()}
    assert report["held_out"] == 6 and len(table) == 11 and report["alpha"] in table
    assert report["alpha"] > 0 and table[report["alpha"]] == max(v for a, v in table.items() if a > 0)
    # alpha 0 is BM25 alone on the same held-out queries.
    data = load_beir(root, split="train")
    held = holdout_qids(list(data.qrels), 6, 0)
    bm25 = BM25Index.build(data.doc_texts(), doc_ids=data.doc_ids)
    run = {q: dict(zip(*bm25.search(data.queries[q], 10))) for q in held}
    want = evaluate(run, {q: data.qrels[q] for q in held}, metrics=("ndcg@10",))["ndcg@10"]
    assert table[0.0] == pytest.approx(float(want), abs=1e-9)


def test_compare_reports_overlap_metrics_and_a_paired_test(small_beir, tmp_path, capsys):
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.runs import read_trec, write_trec

    ours = tmp_path / "bm25.trec"
    assert main(["eval", "--method", "bm25", "--data", str(small_beir), "--output-json", str(tmp_path / "r.json"),
                 "--cache", str(tmp_path / "idx"), "--run", str(ours)]) == 0
    run = read_trec(ours)
    # The same documents, each query's scores negated: the ranking turned upside down.
    flipped = tmp_path / "flipped.trec"
    write_trec(flipped, {q: {d: -s for d, s in docs.items()} for q, docs in run.items()})
    capsys.readouterr()
    assert main(["compare", "--run", str(flipped), "--reference", str(ours), "--data", str(small_beir)]) == 0
    out = capsys.readouterr().out
    qrels = load_beir(small_beir, "test").qrels
    a, b = (evaluate(read_trec(p), qrels, metrics=["ndcg@10"])["ndcg@10"] for p in (flipped, ours))
    assert f"run {a:.4f}, reference {b:.4f}, difference {a - b:+.4f} over 15 queries" in out
    assert a < b and float(out.rsplit("p = ", 1)[1]) < 0.05
