"""TREC run files: round trip, deterministic tie order, malformed input; top-k arrays -> runs."""
import numpy as np
import pytest

from jaxir.errors import DataError
from jaxir.eval.metrics import evaluate
from jaxir.eval.runs import read_trec, run_from_topk, topk_overlap, write_trec


def _random_run(rng, n_queries=7, n_docs=50):
    run = {}
    for q in range(n_queries):
        docs = rng.choice(n_docs, size=rng.integers(1, n_docs), replace=False)
        scores = rng.standard_normal(docs.size) * 10.0 ** rng.integers(-3, 4)
        scores[: docs.size // 3] = np.round(scores[: docs.size // 3])  # some exact ties
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in zip(docs, scores)}
    return run


def test_round_trip_is_exact(tmp_path):
    run = _random_run(np.random.default_rng(1))
    path = tmp_path / "run.trec"
    write_trec(path, run)
    back = read_trec(path)
    assert back == run and list(back) == list(run)
    qrels = {q: {d: 1 for d in list(docs)[::3]} for q, docs in run.items()}
    assert evaluate(back, qrels) == evaluate(run, qrels)


def test_lines_ranked_by_score_then_doc_id(tmp_path):
    run = {"q1": {"b": 1.0, "c": 2.0, "a": 1.0, "10": 1.0, "9": 1.0}, "q0": {"z": -0.5}}
    path = tmp_path / "run.trec"
    write_trec(path, run, tag="bm25")
    rows = [line.split() for line in path.read_text().splitlines()]
    assert [r[0] for r in rows] == ["q1"] * 5 + ["q0"]  # queries in run order
    assert [r[2] for r in rows[:5]] == ["c", "10", "9", "a", "b"]
    assert [int(r[3]) for r in rows] == [1, 2, 3, 4, 5, 1]
    assert {r[1] for r in rows} == {"Q0"} and {r[5] for r in rows} == {"bm25"}
    assert float(rows[5][4]) == -0.5


def test_write_top_k_only(tmp_path):
    rng = np.random.default_rng(2)
    run = _random_run(rng)
    path = tmp_path / "run.trec"
    write_trec(path, run, k=3)
    back = read_trec(path)
    for qid, docs in run.items():
        expected = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert back[qid] == dict(expected)
    with pytest.raises(ValueError):
        write_trec(path, run, k=0)


def test_write_rejects_ids_with_whitespace_and_nan(tmp_path):
    with pytest.raises(DataError, match="doc id 'a b'"):
        write_trec(tmp_path / "r", {"q": {"a b": 1.0}})
    with pytest.raises(DataError, match="NaN"):
        write_trec(tmp_path / "r", {"q": {"a": float("nan")}})
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad_line, message", [
    ("q1 Q0 d1 1 0.5", "expected 6 fields"),
    ("q1 Q0 d1 1 0.5 tag extra", "expected 6 fields"),
    ("q1 Q0 d1 one 0.5 tag", "bad rank"),
    ("q1 Q0 d1 1 high tag", "score 'high'"),
    ("q1 Q0 d1 1 nan tag", "NaN"),
    ("q0 Q0 d0 2 0.1 tag", "listed twice"),
])
def test_read_malformed_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.trec"
    path.write_text(f"q0 Q0 d0 1 0.5 t\n\nq0 Q0 d1 2 0.25 t\n{bad_line}\n")
    with pytest.raises(DataError, match=message) as info:
        read_trec(path)
    assert f"{path}:4:" in str(info.value)


def test_run_from_topk_skips_padding():
    doc_ids = ["d0", "d1", "d2", "d3"]
    indices = np.array([[2, 0, -1], [-1, -1, -1], [3, 1, 2]])
    scores = np.array([[0.9, 0.5, -np.inf], [0, 0, 0], [3.0, 2.0, 1.0]], dtype=np.float32)
    run = run_from_topk(["a", "b", "c"], doc_ids, indices, scores)
    assert run == {"a": {"d2": pytest.approx(0.9), "d0": 0.5}, "b": {},
                   "c": {"d3": 3.0, "d1": 2.0, "d2": 1.0}}
    assert all(type(s) is float for docs in run.values() for s in docs.values())


def test_run_from_topk_rejects_bad_input():
    ids = ["d0", "d1"]
    with pytest.raises(ValueError, match=r"\[Q, k\]"):
        run_from_topk(["a"], ids, np.zeros((2, 1), int), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"\[Q, k\]"):
        run_from_topk(["a"], ids, np.zeros((1, 2), int), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"indices\[0, 1\] = 2"):
        run_from_topk(["a"], ids, np.array([[0, 2]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="integers"):
        run_from_topk(["a"], ids, np.array([[0.0, 1.0]]), np.zeros((1, 2)))
    with pytest.raises(DataError, match="twice"):
        run_from_topk(["a"], ids, np.array([[1, 1]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="duplicates"):
        run_from_topk(["a", "a"], ids, np.zeros((2, 1), int), np.zeros((2, 1)))


def test_topk_overlap_against_a_python_reference():
    rng = np.random.default_rng(5)
    docs = [f"d{i}" for i in range(40)]
    ref = {f"q{i}": {d: float(s) for d, s in zip(docs, rng.normal(size=40))} for i in range(20)}
    run = {q: {d: s + rng.normal(scale=0.5) for d, s in hits.items()} for q, hits in ref.items()}
    del run["q3"]  # a missing query recovers nothing
    want = []
    for q, hits in ref.items():
        top = set(sorted(hits, key=lambda d: -hits[d])[:10])
        got = set(sorted(run.get(q, {}), key=lambda d: -run[q][d])[:10]) if q in run else set()
        want.append(len(top & got) / 10)
    assert topk_overlap(run, ref, 10) == pytest.approx(np.mean(want))
    assert 0 < topk_overlap(run, ref, 10) < 1 and topk_overlap(ref, ref, 10) == 1.0
    with pytest.raises(ValueError):
        topk_overlap(run, ref, 0)
    with pytest.raises(DataError):
        topk_overlap(run, {"q": {}}, 10)
