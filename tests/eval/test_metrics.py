"""jaxir.eval.metrics against ir_measures on real runs, plus hand-computed small cases."""
import math

import bm25s
import ir_measures
import numpy as np
import pytest
import Stemmer
from ir_measures import AP, RR, R, nDCG

from jaxir.errors import DataError, EmptyInputError
from jaxir.eval.beir import load_beir
from jaxir.eval.metrics import evaluate, parse_metric
from jaxir.eval.runs import run_from_topk

# our name -> ir_measures measure (RR@k goes to the MS MARCO evaluator, the rest to pytrec_eval)
IRM = {
    "ndcg@10": nDCG @ 10, "ndcg@3": nDCG @ 3, "ndcg": nDCG,
    "mrr@10": RR @ 10, "mrr@1": RR @ 1, "mrr": RR,
    "recall@100": R @ 100, "recall@5": R @ 5, "map": AP,
}
TOL = 1e-9


def _assert_matches_ir_measures(run, qrels, names=tuple(IRM)):
    ours, ours_per_query = evaluate(run, qrels, metrics=names, ignore_identical_ids=False,
                                    per_query=True)
    measures = [IRM[n] for n in names]
    ref = ir_measures.calc_aggregate(measures, qrels, run)
    for name in names:
        assert abs(ours[name] - ref[IRM[name]]) < TOL, (name, ours[name], ref[IRM[name]])
    by_measure = {m: n for n, m in IRM.items() if n in names}
    ref_per_query = {}
    for metric in ir_measures.iter_calc(measures, qrels, run):
        ref_per_query.setdefault(metric.query_id, {})[by_measure[metric.measure]] = metric.value
    assert list(ours_per_query) == list(qrels)
    assert ref_per_query.keys() == ours_per_query.keys()
    for qid, values in ours_per_query.items():
        for name in names:
            assert abs(values[name] - ref_per_query[qid][name]) < TOL, (qid, name)
    return ours


@pytest.fixture(scope="module")
def scifact_test(scifact_dir):
    return load_beir(scifact_dir, "test")


@pytest.fixture(scope="module")
def bm25_run(scifact_test):
    """BM25 (bm25s, Lucene variant, English stopwords + stemmer) top-1000 over SciFact test."""
    stemmer = Stemmer.Stemmer("english")
    corpus_tokens = bm25s.tokenize(scifact_test.doc_texts(), stopwords="en", stemmer=stemmer,
                                   show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    query_tokens = bm25s.tokenize(scifact_test.query_texts(), stopwords="en", stemmer=stemmer,
                                  return_ids=False, show_progress=False)
    indices, scores = retriever.retrieve(query_tokens, k=1000, show_progress=False, n_threads=1)
    return run_from_topk(scifact_test.query_ids, scifact_test.doc_ids, indices, scores)


def test_bm25_scifact_matches_ir_measures(bm25_run, scifact_test):
    ours = _assert_matches_ir_measures(bm25_run, scifact_test.qrels)
    # Sanity against the peer number measured with the same bm25s set-up (ANCHORS.md: 0.686).
    assert 0.65 < ours["ndcg@10"] < 0.72, ours


def test_identical_ids_dropped_like_beir(bm25_run, scifact_test):
    injected = {q: {q: 1e6, **docs} for q, docs in bm25_run.items()}
    ref = ir_measures.calc_aggregate([nDCG @ 10, AP], scifact_test.qrels, bm25_run)
    ours = evaluate(injected, scifact_test.qrels, metrics=["ndcg@10", "map"])
    assert abs(ours["ndcg@10"] - ref[nDCG @ 10]) < TOL and abs(ours["map"] - ref[AP]) < TOL
    kept = _assert_matches_ir_measures(injected, scifact_test.qrels, names=("ndcg@10", "map"))
    assert kept["ndcg@10"] < ours["ndcg@10"] - 0.05


def _random_nfcorpus_run(dataset, seed):
    """Random scores over 300 random docs + the judged docs. A third of the queries get scores
    rounded to 2 decimals (exact ties), a third rounded + 1e-9 noise (distinct in float64, tied in
    float32, like scores from different float paths), a third plain float64; 10 queries missing."""
    rng = np.random.default_rng(seed)
    doc_ids = np.array(dataset.doc_ids)
    run = {}
    for i, (qid, judged) in enumerate(dataset.qrels.items()):
        if i % 32 == 5:
            continue  # missing from the run: scores 0, still averaged
        cands = set(rng.choice(doc_ids, size=300, replace=False).tolist()) | set(judged)
        scores = rng.random(len(cands))
        if i % 3:
            scores = np.round(scores, 2)
        if i % 3 == 2:
            scores = scores + 1e-9 * rng.random(len(cands))
        run[qid] = dict(zip(sorted(cands), scores.tolist()))
    run["not-a-query"] = {doc_ids[0]: 1.0}  # ignored: not in qrels
    return run


def test_random_nfcorpus_graded_matches_ir_measures(nfcorpus_dir):
    dataset = load_beir(nfcorpus_dir, "test")
    assert {g for j in dataset.qrels.values() for g in j.values()} == {1, 2}
    run = _random_nfcorpus_run(dataset, seed=0)
    ours = _assert_matches_ir_measures(run, dataset.qrels)
    assert len(dataset.qrels) - len(run) + 1 == 10 and ours["map"] > 0
    # The exact ties must matter: breaking them the other way (doc id ascending, by nudges far
    # below the 0.01 rounding step) moves the trec_eval-ordered metrics.
    flipped = {q: {d: s + 1e-6 * (len(docs) - i) for i, (d, s) in enumerate(sorted(docs.items()))}
               for q, docs in run.items()}
    moved = evaluate(flipped, dataset.qrels, ignore_identical_ids=False)
    assert abs(moved["map"] - ours["map"]) > 1e-4 and moved["ndcg@10"] != ours["ndcg@10"]
    # ... and so must the float32 cast (trec_eval) vs float64 (MS MARCO RR@k) distinction.
    exact = {q: {d: float(np.float32(s)) for d, s in docs.items()} for q, docs in run.items()}
    mrr_f32 = evaluate(exact, dataset.qrels, metrics=["mrr@10"], ignore_identical_ids=False)
    assert abs(mrr_f32["mrr@10"] - ours["mrr@10"]) > 1e-4


def test_graded_ndcg_hand_computed():
    qrels = {"q": {"a": 1, "b": 2, "c": 2, "n": 0, "m": -1}}
    run = {"q": {"m": 9.0, "a": 3.0, "b": 2.0, "x": 1.0}}
    dcg = 0 / math.log2(2) + 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    out = evaluate(run, qrels, metrics=["ndcg@10", "ndcg@2", "recall@3", "map", "mrr@10"])
    assert out["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert out["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (2 + 2 / math.log2(3)), abs=1e-12)
    assert out["recall@3"] == pytest.approx(2 / 3) and out["mrr@10"] == pytest.approx(1 / 2)
    assert out["map"] == pytest.approx((1 / 2 + 2 / 3) / 3)


def test_ties_follow_trec_eval_and_msmarco():
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    # trec_eval order c, b, a (doc id descending); MS MARCO order a, b, c (ascending).
    out = evaluate(run, {"q": {"c": 1}}, metrics=["map", "ndcg@1", "mrr", "mrr@10"])
    assert out == {"map": 1.0, "ndcg@1": 1.0, "mrr": 1.0, "mrr@10": pytest.approx(1 / 3)}
    # strcmp order: "9" > "10", so "9" ranks first under trec_eval
    assert evaluate({"q": {"10": 1.0, "9": 1.0}}, {"q": {"9": 1}}, metrics=["map"])["map"] == 1.0
    _assert_matches_ir_measures(run, {"q": {"c": 1}})


def test_float32_ties_like_trec_eval():
    run = {"q": {"a": 1.0 + 1e-12, "b": 1.0}}  # equal in float32: b ranks first (id descending)
    out = evaluate(run, {"q": {"a": 1}}, metrics=["map", "mrr@10"])
    assert out == {"map": 0.5, "mrr@10": 1.0}
    _assert_matches_ir_measures(run, {"q": {"a": 1}})


def test_empty_and_missing_runs_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}}
    assert set(evaluate({}, qrels).values()) == {0.0}
    assert set(evaluate({"q1": {}, "q2": {}}, qrels).values()) == {0.0}
    half = evaluate({"q1": {"a": 1.0}}, qrels, metrics=["ndcg@10", "map"])
    assert half == {"ndcg@10": 0.5, "map": 0.5}
    with pytest.raises(EmptyInputError):
        evaluate({"q1": {"a": 1.0}}, {})


def test_all_zero_qrels_query_is_averaged_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"a": 0, "b": -2}}
    run = {"q1": {"a": 1.0}, "q2": {"a": 1.0, "b": 0.5}}
    means, per_query = evaluate(run, qrels, per_query=True)
    assert set(means.values()) == {0.5}
    assert set(per_query["q2"].values()) == {0.0}
    _assert_matches_ir_measures(run, qrels)


def test_ignore_identical_ids_small():
    run, qrels = {"q": {"q": 5.0, "a": 1.0}}, {"q": {"a": 1}}
    assert evaluate(run, qrels, metrics=["map"])["map"] == 1.0
    assert evaluate(run, qrels, metrics=["map"], ignore_identical_ids=False)["map"] == 0.5


def test_nan_score_is_an_error():
    with pytest.raises(DataError, match="'q'"):
        evaluate({"q": {"a": float("nan")}}, {"q": {"a": 1}})


def test_parse_metric_names():
    assert parse_metric("nDCG@10") == parse_metric("ndcg@10")
    assert (parse_metric("recall@1000").kind, parse_metric("recall@1000").k) == ("recall", 1000)
    assert (parse_metric("map").kind, parse_metric("map").k) == ("map", None)
    assert list(evaluate({}, {"q": {"a": 1}}, metrics=["MRR@10"])) == ["mrr@10"]
    assert (parse_metric("map@10").name, parse_metric("P@10").name) == ("map@10", "p@10")  # AP@k, P@k
    for bad in ["ndcg@0", "p", "recall@", "ndcg@-1", "", "ndcg@1.5"]:
        with pytest.raises(ValueError, match="unknown metric"):
            parse_metric(bad)
