"""Hard-negative mining: BM25 on the real SciFact train split; every other first-stage method
(dense, ColBERT through PLAID, sparse, SPLADE, I³) on the toy BEIR folder, each equal to its own search."""
import json

import pytest

from jaxir.data.mine import mine_hard_negatives, mine_split, read_mined
from jaxir.errors import DataError
from jaxir.eval.beir import load_beir


@pytest.fixture(scope="module")
def scifact_train(scifact_dir):
    return load_beir(scifact_dir, split="train")


@pytest.fixture(scope="module")
def mined(scifact_train, tmp_path_factory):
    out = tmp_path_factory.mktemp("mine") / "neg.jsonl"
    summary = mine_hard_negatives(scifact_train, "bm25", 20, out=out,
                                  cache=out.parent / "indexes")
    return out, summary


def test_one_line_per_train_query_with_the_documented_fields(scifact_train, mined):
    out, summary = mined
    lines = out.read_text().splitlines()
    with_pos = [q for q, rel in scifact_train.qrels.items() if any(g > 0 for g in rel.values())]
    assert len(lines) == summary["queries"] == len(with_pos) == 809
    rec = json.loads(lines[0])
    assert set(rec) == {"qid", "positives", "candidates"}
    assert [r["qid"] for r in read_mined(out)] == with_pos
    for r in read_mined(out):
        assert len(r["candidates"]) == 20
        scores = [s for _, s in r["candidates"]]
        assert scores == sorted(scores, reverse=True)
        assert all(d in scifact_train.corpus for d, _ in r["candidates"])


def test_positives_never_appear_as_candidates(scifact_train, mined):
    out, _ = mined
    n_hit = 0
    for r in read_mined(out):
        rel = scifact_train.qrels[r["qid"]]
        assert r["positives"] == [d for d, g in rel.items() if g > 0]
        cands = {d for d, _ in r["candidates"]}
        assert not cands & set(r["positives"])
        n_hit += len(cands) == len(r["candidates"])  # no duplicate candidates either
    assert n_hit == 809


def test_positive_ranked_by_bm25_is_removed_not_truncated(scifact_train, mined, tmp_path):
    """Over-fetching keeps `depth` candidates even when positives sat inside the top depth."""
    from jaxir.retrievers.registry import get_retriever

    out, summary = mined
    searcher = get_retriever("bm25").open(summary["index"])
    recs = {r["qid"]: r for r in read_mined(out)}
    qid = next(q for q in recs if recs[q]["positives"][0] in
               searcher.search([scifact_train.queries[q]], 20)[0][0])
    ids, _ = searcher.search([scifact_train.queries[qid]], 40)[0]
    expected = [d for d in ids if d not in recs[qid]["positives"]][:20]
    assert [d for d, _ in recs[qid]["candidates"]] == expected


def test_mine_split_entry_and_bad_records(scifact_dir, tmp_path):
    summary = mine_split(str(scifact_dir), retriever="bm25", depth=5, out=str(tmp_path / "m.jsonl"),
                         cache=str(tmp_path / "idx"))
    assert summary["queries"] == 809
    assert all(len(r["candidates"]) == 5 for r in read_mined(tmp_path / "m.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "1", "positives": [], "candidates": []}\n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        list(read_mined(bad))
    with pytest.raises(ValueError, match="cannot mine"):  # a reranker has no index to rank with
        mine_hard_negatives(load_beir(scifact_dir, split="train"), "cross-encoder", out=bad)


@pytest.mark.parametrize("method", ["dense", "colbert", "sparse", "splade", "i3"])
@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_any_first_stage_method_mines_what_its_search_returns(method, toy_beir, tmp_path):
    """The mined candidates are the method's own top hits (ColBERT: its PLAID search) with the
    positives taken out, in the same record format as BM25's."""
    from jaxir.retrievers.registry import get_retriever

    data = load_beir(toy_beir, split="train")
    out = tmp_path / "neg.jsonl"
    summary = mine_hard_negatives(data, method, 6, out=out, cache=tmp_path / "idx")
    assert summary["queries"] == 16 and summary["retriever"] == method
    searcher = get_retriever(method).open(summary["index"])
    recs = list(read_mined(out))
    assert [r["qid"] for r in recs] == list(data.qrels)
    hits = searcher.search([data.queries[r["qid"]] for r in recs], 7)
    for rec, (ids, scores) in zip(recs, hits):
        assert rec["positives"] == [f"d{rec['qid'][1:]}_0"]
        want = [[d, float(s)] for d, s in zip(ids, scores) if d not in rec["positives"]][:6]
        assert rec["candidates"] == want


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_mine_cli_passes_the_method_options_on(toy_beir, tmp_path, capsys):
    """`jaxir mine --retriever colbert --checkpoint X` reaches the retriever: a missing checkpoint
    is one line naming it, nothing written; a reranker is not a --retriever choice."""
    from jaxir import cli

    out = tmp_path / "neg.jsonl"
    common = ["--data", str(toy_beir), "--out", str(out), "--cache", str(tmp_path / "idx")]
    assert cli.main(["mine", "--retriever", "colbert", "--checkpoint", str(tmp_path / "nope"), *common]) == 2
    assert "nope" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit):
        cli.main(["mine", "--retriever", "cross-encoder", *common])
    # --batch-size is the encoder's (a retriever option), not the mining loop's query batch.
    assert cli.main(["mine", "--retriever", "colbert", "--ncells", "2", "--batch-size", "4", "--depth", "3",
                     *common]) == 0
    assert all(len(r["candidates"]) == 3 for r in read_mined(out))
    data = load_beir(toy_beir, split="train")
    summary = mine_hard_negatives(data, "colbert", 3, out=tmp_path / "n2.jsonl", cache=tmp_path / "idx",
                                  ncells=2, batch_size=4, query_batch=5)
    assert summary["options"] == {"ncells": "2", "batch_size": "4"}
    assert [r["qid"] for r in read_mined(tmp_path / "n2.jsonl")] == [r["qid"] for r in read_mined(out)]
