"""`jaxir score` and the metric names of ir_measures / trec_eval (issue 40, items 3 and 5): every
spelling means what ir_measures and pytrec_eval say it means, P@k and AP@k follow pytrec_eval per
query, bad runs and names are one line, the eval table keeps only the metrics its run's depth
reaches, outputs land in folders created for them (after the clobber checks), tables fit."""
import json
import re

import ir_measures
import numpy as np
import pytest
import pytrec_eval

from jaxir.cli import main
from jaxir.eval.metrics import METRIC_KINDS, evaluate, parse_metric
from jaxir.eval.runs import read_qrels, read_trec, write_trec
from tests.toy_beir import write_toy_beir


def _graded(seed=0, n_queries=40, n_docs=120):
    """Random graded qrels (0-2, some queries without a relevant doc) and a run over every judged
    query, a third of its scores rounded (exact ties) and a third tied only in float32."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        judged = rng.choice(docs, size=12, replace=False)
        qrels[f"q{q}"] = {d: int(rng.integers(0, 3)) if q % 7 else 0 for d in judged}
        cands = rng.choice(docs, size=int(rng.integers(3, 60)), replace=False)
        scores = rng.random(len(cands))
        if q % 3 == 1:
            scores = np.round(scores, 1)
        elif q % 3 == 2:
            scores = np.round(scores, 2) + 1e-9 * rng.random(len(cands))
        run[f"q{q}"] = dict(zip(cands.tolist(), scores.tolist()))
    return qrels, run


TREC = {"P_1": "p@1", "P_5": "p@5", "P_10": "p@10", "P_100": "p@100", "map_cut_5": "map@5",
        "map_cut_10": "map@10", "map_cut_1000": "map@1000", "ndcg_cut_10": "ndcg@10",
        "recall_1000": "recall@1000", "map": "map", "recip_rank": "mrr", "ndcg": "ndcg"}


@pytest.mark.parametrize("seed", [0, 1])
def test_p_at_k_and_ap_at_k_equal_pytrec_eval_per_query(seed):
    qrels, run = _graded(seed)
    ref = pytrec_eval.RelevanceEvaluator(qrels, set(TREC)).evaluate(run)
    ours = evaluate(run, qrels, metrics=list(TREC), ignore_identical_ids=False, per_query=True)[1]
    assert ref.keys() == ours.keys()
    for qid, values in ref.items():
        for trec_name, ours_name in TREC.items():
            assert ours[qid][ours_name] == pytest.approx(values[trec_name], abs=1e-12), (qid, trec_name)
    # Not vacuous: the cut-offs and the ties move the numbers.
    means = evaluate(run, qrels, metrics=["P@5", "P@100", "AP@5", "map"], ignore_identical_ids=False)
    assert 0 < means["p@100"] < means["p@5"] and 0 < means["map@5"] < means["map"]


IR_MEASURES = ["nDCG@10", "P@10", "R@1000", "MAP", "AP", "AP@5", "MRR@10", "RR@10", "RR", "nDCG", "R@5"]
TREC_NAMES = ["ndcg_cut_10", "recall_1000", "P_5", "P.5", "map_cut_5", "map", "recip_rank", "ndcg"]


@pytest.mark.parametrize("name", IR_MEASURES + TREC_NAMES)
def test_each_spelling_means_what_ir_measures_says(name):
    qrels, run = _graded(2)
    measure = ir_measures.parse_measure(name) if name in IR_MEASURES else ir_measures.parse_trec_measure(name)[0]
    want = ir_measures.calc_aggregate([measure], qrels, run)[measure]
    got = evaluate(run, qrels, metrics=[name], ignore_identical_ids=False)
    assert list(got) == [parse_metric(name).name]
    assert got[parse_metric(name).name] == pytest.approx(want, abs=1e-12)


def test_names_are_case_insensitive_and_map_to_one_canonical_name():
    same = {"ndcg@10": ["nDCG@10", "NDCG@10", "ndcg_cut_10", "NDCG_CUT.10"], "p@10": ["P@10", "p_10", "P.10"],
            "recall@1000": ["R@1000", "recall_1000", "Recall@1000"], "map": ["MAP", "ap", "Map"],
            "map@5": ["AP@5", "map_cut_5"], "mrr@10": ["MRR@10", "rr@10"], "mrr": ["RR", "recip_rank"]}
    for canonical, names in same.items():
        assert {parse_metric(n).name for n in names} == {canonical}
    # One table declares them: every alias of it parses, to its own kind.
    for kind in METRIC_KINDS:
        for alias in kind.aliases + kind.cut_aliases:
            assert parse_metric(f"{alias}_3").kind == kind.kind
    for bad in ["foo@10", "P", "ndcg_cut", "recip_rank@10", "ndcg@0", "ndcg@1.5", "", "nDCG(dcg='exp')@10"]:
        with pytest.raises(ValueError, match=r"unknown metric.*known: nDCG@K"):
            parse_metric(bad)


def test_read_qrels_trec_and_beir_alike(tmp_path):
    (tmp_path / "a.qrels").write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")
    (tmp_path / "b.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    assert read_qrels(tmp_path / "a.qrels") == read_qrels(tmp_path / "b.tsv") == {
        "q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    (tmp_path / "c.qrels").write_text("q1 0 d1 1\nq1 0 d1 2\n")
    with pytest.raises(ValueError, match=r"c.qrels:2: .*graded 2 here but 1 on line 1"):
        read_qrels(tmp_path / "c.qrels")
    (tmp_path / "d.qrels").write_text("q1 0 d1 x\n")
    with pytest.raises(ValueError, match=r"d.qrels:1: grade 'x'"):
        read_qrels(tmp_path / "d.qrels")


# ---- the command line -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_beir(tmp_path_factory.mktemp("score") / "a-dataset-name-over-ten")


@pytest.fixture(scope="module")
def toy_run(toy, tmp_path_factory):
    """A 5-deep run over every train query of the toy set: the positive at rank q mod 5 + 1."""
    qrels = read_qrels(toy / "qrels" / "train.tsv")
    run = {}
    for i, (qid, judged) in enumerate(qrels.items()):
        ranked = [f"d{(int(qid[1:]) + 1) % 8}_{j}" for j in range(4)]  # another topic's documents
        ranked.insert(i % 5, next(iter(judged)))
        run[qid] = {d: float(10 - r) for r, d in enumerate(ranked)}
    path = tmp_path_factory.mktemp("runs") / "toy.trec"
    write_trec(path, run)
    return path


def _out_err(capsys):
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_score_prints_a_table_or_json_with_the_library_numbers(toy, toy_run, capsys):
    names = ["nDCG@10", "P@1", "R@5", "ndcg_cut_3", "recall_2", "MAP", "MRR@10"]
    want = evaluate(read_trec(toy_run), read_qrels(toy / "qrels" / "train.tsv"), metrics=names)
    assert main(["score", "--run", str(toy_run), "--data", str(toy), "--split", "train", "--metrics", *names]) == 0
    out, err = _out_err(capsys)
    lines = out.strip().splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1  # a table, columns fitted
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == ["run", "queries", *want] and row[:2] == ["toy.trec", "16"]
    assert [float(v) for v in row[2:]] == [round(v, 4) for v in want.values()]
    assert "warning" in err and "at most 5 hits per query" in err and "ndcg@10, mrr@10" in err  # cut-offs past 5
    assert 0 < want["p@1"] < 1 and 0 < want["recall@2"] < want["recall@5"] == 1.0
    # --json: one object, full precision; a TREC qrels file judges the same.
    trec = toy.parent / "train.qrels"
    trec.write_text("".join(f"{q} 0 {d} {g}\n" for q, j in read_qrels(toy / "qrels" / "train.tsv").items()
                            for d, g in j.items()))
    assert main(["score", "--run", str(toy_run), "--qrels", str(trec), "--metrics", *names, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["metrics"] == want and got["depth"] == 5 and got["num_queries"] == 16


def test_shallow_run_warns_once_with_its_depth(toy, toy_run, capsys):
    assert main(["score", "--run", str(toy_run), "--data", str(toy), "--split", "train",
                 "--metrics", "R@1000", "P@5", "map"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: the run holds at most 5 hits per query, fewer than the cut-off of recall@1000: "
                   "that metric counts only the top 5"]


def test_run_matching_no_or_some_queries(toy, toy_run, tmp_path, capsys):
    run = read_trec(toy_run)
    foreign = tmp_path / "foreign.trec"
    write_trec(foreign, {f"x{q}": docs for q, docs in run.items()})
    assert main(["score", "--run", str(foreign), "--data", str(toy), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none of the run's 16 query ids is in the qrels (16 queries" in err
    some = tmp_path / "some.trec"
    kept = dict(list(run.items())[3:])
    write_trec(some, {**kept, "extra1": {"d0_0": 1.0}, "extra2": {"d0_0": 1.0}})
    assert main(["score", "--run", str(some), "--data", str(toy), "--split", "train", "--metrics", "P@1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: 3 of the 16 judged queries are not in the run (each scores 0 in the means, as with "
                   "trec_eval -c); 2 of the run's 15 queries have no qrels (ignored)"]


def test_unknown_metric_lists_the_known_ones(toy, toy_run, capsys):
    for argv in (["score", "--run", str(toy_run), "--data", str(toy), "--metrics", "nDCG@10", "bpref"],
                 ["compare", "--run", str(toy_run), "--reference", str(toy_run), "--metric", "P"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "Traceback" not in err
        last = err.strip().splitlines()[-1]
        assert "unknown metric" in last and all(n in last for n in ("nDCG@K", "P@K", "R@K", "MAP", "MRR@K"))


def test_compare_takes_the_same_names(toy, toy_run, tmp_path, capsys):
    flipped = tmp_path / "flipped.trec"
    write_trec(flipped, {q: {d: -s for d, s in docs.items()} for q, docs in read_trec(toy_run).items()})
    assert main(["compare", "--run", str(flipped), "--reference", str(toy_run), "--data", str(toy),
                 "--split", "train", "--metric", "ndcg_cut_3", "P@1", "MAP"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == ["ndcg@3", "p@1", "map"]


def _eval(toy, tmp_path, *extra):
    return main(["eval", "--method", "bm25", "--data", str(toy), "--split", "train",
                 "--cache", str(tmp_path / "cache"), *extra])


def test_eval_table_fits_the_run_depth_and_its_contents(toy, tmp_path, capsys):
    out_json = tmp_path / "new" / "deeper" / "r.json"
    assert _eval(toy, tmp_path, "--k", "10", "--output-json", str(out_json), "--run", str(tmp_path / "a" / "r.trec")) == 0
    out, err = _out_err(capsys)
    assert "reused" not in err
    result = json.loads(out_json.read_text())
    assert set(result["metrics"]) == {"ndcg@10", "mrr@10", "map"} and result["k"] == 10
    assert (tmp_path / "a" / "r.trec").is_file()
    table = out.strip().splitlines()[:3]
    assert "recall@100" not in out and "a-dataset-name-over-ten" in table[2]
    assert len({len(line) for line in table}) == 1  # a long dataset name widens its column
    # For people: a table and one rounded timing line; no raw JSON, no 16-digit floats, no dicts.
    assert out.strip().splitlines()[3].startswith("timing: ") and len(out.strip().splitlines()) == 4
    assert not re.search(r"\d\.\d{5,}|[{}]", out), out
    # The second time the cached index is reused, and said so; --json is one object alone on stdout.
    assert _eval(toy, tmp_path, "--json") == 0
    out, err = _out_err(capsys)
    assert re.search(r"^reused the bm25 index at .*cache", err, re.M)
    result = json.loads(out)
    assert set(result["metrics"]) == {"ndcg@10", "mrr@10", "recall@100", "map"} and result["k"] == 100
    assert all(len(repr(v).split(".")[-1]) <= 4 for v in result["timing"].values())


def test_format_table_names_a_missing_metric(toy):
    from jaxir.pipeline.evaluate import format_table

    rows = [{"dataset": "d", "method": "m", "metrics": {"ndcg@10": 0.5}, "timing": {"ms_per_query": 1.0}},
            {"dataset": "a-much-longer-name", "method": "colbert-rerank",
             "metrics": {"ndcg@10": 0.25, "recall@100": 0.75}, "timing": {"ms_per_query": 12.345}}]
    lines = format_table(rows).splitlines()
    assert len({len(line) for line in lines}) == 1 and "n/a" in lines[2] and "12.35" in lines[3]


def test_output_folders_are_made_after_the_clobber_checks(toy, tmp_path, capsys):
    # Refused (the output lies inside --data): nothing is created, not even the missing folder.
    assert _eval(toy, tmp_path, "--run", str(toy / "new" / "r.trec")) == 2
    assert "write the output elsewhere" in capsys.readouterr().err and not (toy / "new").exists()
    # Accepted: every missing parent is created, for files and for folders.
    idx = tmp_path / "x" / "y" / "idx"
    assert main(["index", "--method", "bm25", "--data", str(toy), "--split", "train", "--out", str(idx)]) == 0
    run = tmp_path / "s" / "t" / "r.trec"
    assert main(["search", "--index", str(idx), "--queries", str(toy), "--split", "train", "--run", str(run)]) == 0
    idf = tmp_path / "i" / "idf.json"
    assert main(["idf", "--data", str(toy), "--split", "train", "--out", str(idf)]) == 0
    assert run.is_file() and idf.is_file() and (idx / "manifest.json").is_file()
    # A path below a file is refused when parsed.
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        main(["search", "--index", str(idx), "--queries", str(toy), "--run", str(tmp_path / "file" / "r.trec")])
    assert "is not a folder" in capsys.readouterr().err
