"""Teacher scores for mined tuples: what is scored, the file format TupleSource reads, bad input."""
import json

import numpy as np
import pytest

from jaxir.cli import build_parser
from jaxir.data.mine import write_mined
from jaxir.data.teacher import candidates_to_score, score_mined
from jaxir.data.tuples import TupleConfig, TupleSource
from jaxir.errors import DataError
from jaxir.eval.beir import BeirDataset


def _records(n_queries, n_cands):
    # Query 0's positive also appears among its candidates: it must be scored once.
    return [{"qid": f"q{i}", "positives": [f"p{i}"],
             "candidates": [[f"p{i}" if (i == 0 and j == 2) else f"d{i}_{j}", float(-j)]
                            for j in range(n_cands)]}
            for i in range(n_queries)]


def _scorer(calls):
    """Deterministic fake teacher: a hash of (query, doc text), recorded per call."""
    def score(queries, doc_lists):
        calls.append(sum(len(d) for d in doc_lists))
        return [np.array([(hash((q, t)) % 1000) / 100.0 for t in docs], np.float32)
                for q, docs in zip(queries, doc_lists)]
    return score


def test_scores_positives_and_top_depth_in_the_tuple_file_format(tmp_path):
    recs = _records(7, 20)
    write_mined(tmp_path / "mined.jsonl", recs)
    queries = {r["qid"]: f"query {r['qid']}" for r in recs}
    text = lambda d: f"text of {d}"  # noqa: E731
    calls = []
    summary = score_mined(_scorer(calls), tmp_path / "mined.jsonl", queries, text, depth=5,
                          out=tmp_path / "teacher.jsonl", chunk=3)
    assert summary["queries"] == 7 and sum(calls) == summary["pairs"] == 7 * 6 - 1
    assert len(calls) == 3  # chunks of 3, 3, 1 queries
    lines = [json.loads(x) for x in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in lines] == [r["qid"] for r in recs]
    for rec, line in zip(recs, lines):
        expect = candidates_to_score(rec, 5)
        assert list(line["scores"]) == expect and expect[0] == rec["positives"][0]
        for d, s in line["scores"].items():
            assert s == pytest.approx((hash((queries[rec["qid"]], text(d))) % 1000) / 100.0, abs=1e-5)
    # TupleSource reads it: teacher [B, N] aligned with the sampled doc ids.
    src = TupleSource(tmp_path / "mined.jsonl", queries, text, lambda q, d: {},
                      TupleConfig(n_negatives=3, neg_depth=5), teacher_path=tmp_path / "teacher.jsonl")
    t = src.tuple_at(4, 0)
    np.testing.assert_allclose(t.teacher, [lines[4]["scores"][d] for d in t.doc_ids])
    assert src.take(np.arange(7))["teacher"].shape == (7, 4)


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path):
    recs = _records(3, 4)
    write_mined(tmp_path / "mined.jsonl", recs)
    out = tmp_path / "teacher.jsonl"
    with pytest.raises(DataError, match="q1"):
        score_mined(_scorer([]), tmp_path / "mined.jsonl", {"q0": "a", "q2": "c"}, str,
                    depth=2, out=out, chunk=1)
    assert not out.exists() and not list(tmp_path.glob(".teacher.jsonl.tmp*"))  # no half file
    with pytest.raises(ValueError, match="depth"):
        score_mined(_scorer([]), tmp_path / "mined.jsonl", {}, str, depth=0, out=out)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="no mined records"):
        score_mined(_scorer([]), tmp_path / "empty.jsonl", {}, str, depth=2, out=out)
    data = BeirDataset("toy", "train", {"d1": {"title": "T", "text": "x"}}, {}, {})
    assert data.text_of("d1") == "T x"
    with pytest.raises(DataError, match="'d9' is not in the toy corpus"):
        data.text_of("d9")


def test_cli_has_a_teacher_command():
    args = build_parser().parse_args(["teacher", "--checkpoint", "ce", "--mined", "m.jsonl",
                                      "--data", "beir", "--out", "t.jsonl", "--depth", "15"])
    assert (args.checkpoint, args.mined, args.depth, args.split) == ("ce", "m.jsonl", 15, "train")
