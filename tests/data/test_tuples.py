"""Seeded n-way tuples: determinism, sampling rules, fixed shapes, bounded memory."""
import json
import tracemalloc

import numpy as np
import pytest

from jaxir.data.mine import write_mined
from jaxir.data.tuples import PairEncoder, TupleConfig, TupleSource
from jaxir.errors import DataError
from jaxir.text import load_tokenizer


def _records(n_queries, n_cands, rng):
    return [{"qid": f"q{i}", "positives": [f"p{i}a", f"p{i}b"][: 1 + i % 2],
             "candidates": [[f"d{i}_{j}", float(n_cands - j)] for j in range(n_cands)]}
            for i in range(n_queries)]


def _source(tmp_path, records, config, *, encode=None, teacher=None):
    path = tmp_path / "mined.jsonl"
    write_mined(path, records)
    queries = {r["qid"]: f"query number {r['qid']}" for r in records}
    encode = encode or (lambda qs, docs: {"n": np.array([[len(d) for d in row] for row in docs])})
    return TupleSource(path, queries, lambda d: f"text of {d}", encode, config, teacher_path=teacher)


def _epoch_ids(src, epoch):
    return [(t.qid, tuple(t.doc_ids)) for t in src.iter_epoch(epoch)]


def test_same_seed_same_tuples_other_seed_or_epoch_differs(tmp_path):
    recs = _records(30, 40, np.random.default_rng(0))
    a = _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=20, seed=1))
    b = _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=20, seed=1))
    c = _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=20, seed=2))
    assert _epoch_ids(a, 0) == _epoch_ids(a, 0) == _epoch_ids(b, 0)
    assert _epoch_ids(a, 0) != _epoch_ids(c, 0)
    assert _epoch_ids(a, 0) != _epoch_ids(a, 1)
    assert sorted(q for q, _ in _epoch_ids(a, 3)) == sorted(r["qid"] for r in recs)


def test_sampling_rules(tmp_path):
    recs = _records(20, 50, None)
    src = _source(tmp_path, recs, TupleConfig(n_negatives=6, neg_depth=10, seed=0, draws=3))
    assert len(src) == 60
    seen = set()
    for row in range(len(src)):
        t = src.tuple_at(row % 20, row // 20)
        rec = recs[row % 20]
        assert t.doc_ids[0] in rec["positives"]
        negs = t.doc_ids[1:]
        assert len(set(negs)) == 6 and t.valid.all()
        top = {d for d, _ in rec["candidates"][:10]}
        assert set(negs) <= top
        seen.update(negs)
    # Fixed negatives would cover exactly 20 x 6 = 120 docs; 3 fresh draws cover ~187 of 200.
    assert len(seen) > 150


def test_too_few_candidates_are_marked_invalid(tmp_path):
    recs = [{"qid": "a", "positives": ["p"], "candidates": [["x", 2.0], ["y", 1.0]]},
            {"qid": "b", "positives": ["p2"], "candidates": []}]
    src = _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=10))
    t = src.tuple_at(0, 0)
    assert t.valid.tolist() == [True, True, True, False, False]
    assert sorted(t.doc_ids[1:3]) == ["x", "y"]
    assert src.tuple_at(1, 0).valid.tolist() == [True, False, False, False, False]


def test_take_gives_fixed_shape_pair_arrays(tmp_path):
    tok = load_tokenizer()
    recs = _records(6, 12, None)
    src = _source(tmp_path, recs, TupleConfig(n_negatives=3, neg_depth=12),
                  encode=PairEncoder(tok, 24))
    batch = src.take(np.array([5, 0, 3]))
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        assert batch[k].shape == (3, 4, 24) and batch[k].dtype == np.int32
    assert batch["valid"].shape == (3, 4)
    row = batch["input_ids"][0, 0][batch["attention_mask"][0, 0] == 1]
    q = tok("query number q5", add_special_tokens=False)["input_ids"]
    assert row[0] == tok.cls_token_id and list(row[1:1 + len(q)]) == q
    assert row[1 + len(q)] == tok.sep_token_id and row[-1] == tok.sep_token_id
    types = batch["token_type_ids"][0, 0][batch["attention_mask"][0, 0] == 1]
    assert types.tolist() == [0] * (len(q) + 2) + [1] * (len(row) - len(q) - 2)
    again = src.take(np.array([5, 0, 3]))
    np.testing.assert_array_equal(batch["input_ids"], again["input_ids"])


def test_teacher_scores_follow_the_sampled_docs(tmp_path):
    recs = _records(4, 8, None)
    teacher = tmp_path / "teacher.jsonl"
    with open(teacher, "w") as f:
        for r in recs:
            ids = r["positives"] + [d for d, _ in r["candidates"]]
            f.write(json.dumps({"qid": r["qid"], "scores": {d: float(len(d) + i)
                                                            for i, d in enumerate(ids)}}) + "\n")
    src = _source(tmp_path, recs, TupleConfig(n_negatives=3, neg_depth=8), teacher=teacher)
    table = {json.loads(x)["qid"]: json.loads(x)["scores"] for x in teacher.read_text().splitlines()}
    batch = src.take(np.array([2, 1]))
    for b, row in enumerate([2, 1]):
        t = src.tuple_at(row, 0)
        np.testing.assert_allclose(batch["teacher"][b], [table[t.qid][d] for d in t.doc_ids])
    teacher.write_text(json.dumps({"qid": "q0", "scores": {"p0a": 1.0}}) + "\n")
    src = _source(tmp_path, recs, TupleConfig(n_negatives=3, neg_depth=8), teacher=teacher)
    with pytest.raises(DataError, match="teacher"):
        src.take(np.array([0]))


def test_streaming_memory_is_bounded(tmp_path):
    """20k queries x 100 candidates (~30 MB of JSON): the source keeps offsets, not records."""
    path = tmp_path / "big.jsonl"
    write_mined(path, ({"qid": f"q{i}", "positives": [f"p{i}"],
                        "candidates": [[f"doc{i}_{j}", 100.0 - j] for j in range(100)]}
                       for i in range(20_000)))
    assert path.stat().st_size > 25e6
    queries = {f"q{i}": "some query" for i in range(20_000)}
    tracemalloc.start()
    src = TupleSource(path, queries, lambda d: d, lambda qs, docs: {"n": np.zeros(len(qs))},
                      TupleConfig(n_negatives=7, neg_depth=30))
    batch = src.take(np.arange(0, 20_000, 997))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(src) == 20_000 and batch["valid"].shape == (21, 8)
    assert peak < 2e6, f"peak {peak / 1e6:.1f} MB: records are being held in memory"


def test_teacher_skip_draws_below_the_teachers_top_ranks(tmp_path):
    """teacher_skip k: the top neg_depth candidates re-ranked by the teacher, its best k never
    drawn, every other one drawn from; without teacher scores the option is refused."""
    recs = _records(6, 20, None)
    rng = np.random.default_rng(3)
    teacher_path = tmp_path / "teacher.jsonl"
    teacher = {}
    with open(teacher_path, "w") as f:
        for r in recs:
            scores = {d: float(s) for d, s in zip([c[0] for c in r["candidates"]] + r["positives"],
                                                  rng.normal(size=22))}
            teacher[r["qid"]] = scores
            f.write(json.dumps({"qid": r["qid"], "scores": scores}) + "\n")
    src = _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=12, teacher_skip=3, draws=40),
                  teacher=teacher_path)
    for i, r in enumerate(recs):
        pool = [c[0] for c in r["candidates"][:12]]
        by_teacher = sorted(pool, key=lambda d: -teacher[r["qid"]][d])
        drawn = {d for e in range(40) for d in src.tuple_at(i, e).doc_ids[1:]}
        assert drawn == set(by_teacher[3:]), r["qid"]  # 9 left, 40 draws of 4 cover them all
    with pytest.raises(DataError, match="teacher_skip 3 re-ranks by the teacher"):
        _source(tmp_path, recs, TupleConfig(n_negatives=4, neg_depth=12, teacher_skip=3))
    with pytest.raises(ValueError, match="too few candidates"):
        TupleConfig(n_negatives=4, neg_depth=6, teacher_skip=3)
