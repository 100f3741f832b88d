"""ColBERT CPU recipe: seeded query subsets, n-way batches with teacher scores, its options and
a two-step run of the real entry point."""
import json

import numpy as np
import pytest

from jaxir.data.mine import read_mined, write_mined
from jaxir.data.teacher import score_mined
from jaxir.eval.beir import BeirDataset
from jaxir.methods.colbert import ColBERTModel
from jaxir.models.bert import BertConfig
from jaxir.recipes import colbert as recipe
from jaxir.recipes.colbert import nway_arrays
from jaxir.recipes.nway_data import nway_source, subset_mined


def _mined(tmp_path, n=12):
    recs = [{"qid": f"q{i}", "positives": [f"p{i}_{j}" for j in range(1 + i % 5)],
             "candidates": [[f"d{i}_{j}", float(-j)] for j in range(20)]} for i in range(n)]
    write_mined(tmp_path / "negatives.bm25.d100.jsonl", recs)
    return tmp_path / "negatives.bm25.d100.jsonl", recs


def test_subset_is_seeded_capped_and_in_file_order(tmp_path):
    mined, recs = _mined(tmp_path)
    assert subset_mined(mined, 0, 0, seed=0) == mined
    a = subset_mined(mined, 5, 2, seed=3)
    assert a.name == "negatives.bm25.d100.q5.p2.jsonl"
    got = list(read_mined(a))
    index = {r["qid"]: i for i, r in enumerate(recs)}
    assert len(got) == 5 and [index[r["qid"]] for r in got] == sorted(index[r["qid"]] for r in got)
    for r in got:
        assert r["positives"] == recs[index[r["qid"]]]["positives"][:2]
        assert r["candidates"] == recs[index[r["qid"]]]["candidates"]
    a.unlink()
    assert [r["qid"] for r in read_mined(subset_mined(mined, 5, 2, seed=3))] == [r["qid"] for r in got]
    b = subset_mined(mined, 5, 3, seed=4)
    assert [r["qid"] for r in read_mined(b)] != [r["qid"] for r in got]


def test_beir_source_gives_nway_token_batches_with_teacher_scores(tmp_path):
    mined, recs = _mined(tmp_path)
    corpus = {d: {"title": "", "text": f"document {d} about cells"}
              for r in recs for d in [*r["positives"], *(c[0] for c in r["candidates"])]}
    data = BeirDataset("toy", "train", corpus, {r["qid"]: f"query {r['qid']}?" for r in recs}, {})
    teacher = tmp_path / "teacher.jsonl"
    score_mined(lambda qs, docs: [np.arange(len(d), dtype=np.float32) for d in docs], mined,
                data.queries, data.text_of, depth=6, out=teacher)
    cfg = recipe.config(overrides={"data.tuples.n_negatives": 3, "data.tuples.neg_depth": 6, "fit.steps": 3,
                                   "optim.warmup_steps": 0, "fit.batch_size": 8, "model.query_maxlen": 16,
                                   "model.doc_maxlen": 24})
    model = ColBERTModel(cfg.model, bert_config=BertConfig(), bert_params=None)
    src = nway_source(lambda q, d: nway_arrays(model, q, d), cfg.data, cfg.fit.steps, cfg.fit.batch_size,
                      (data, mined, teacher))
    assert len(src) == 12 * 2  # 3 steps x 8 rows need two passes over 12 queries
    batch = src.take(np.array([0, 13, 5]))
    assert batch["q_ids"].shape == (3, 16) and batch["d_ids"].shape == (3, 4, 24)
    assert batch["d_mask"].shape == (3, 4, 24) and batch["teacher"].shape == (3, 4)
    lines = {r["qid"]: r["scores"] for r in map(json.loads, teacher.read_text().splitlines())}
    t = src.tuple_at(5, 0)
    np.testing.assert_allclose(batch["teacher"][2], [lines["q5"][d] for d in t.doc_ids])


def test_modes_are_overrides_of_one_default():
    nf, _ = recipe.parse_args(["--mode", "cpu-nfcorpus", "--out", "x", "--data.max_queries", "0"])
    assert (nf.data.dataset, nf.data.max_queries, nf.data.max_positives) == ("nfcorpus", 0, 4)
    assert nf.optim == recipe.RECIPE.optim and nf.model == recipe.RECIPE.model
    tpu, _ = recipe.parse_args(["--mode", "tpu-msmarco", "--out", "x", "--fit.seed", "3"])
    assert (tpu.data.tuples.n_negatives, tpu.optim.total_steps, tpu.optim.learning_rate) == (63, 400_000, 1e-5)
    assert tpu.model.seed == tpu.data.tuples.seed == 3 and tpu.model.doc_maxlen == 180
    r2, _ = recipe.parse_args(["--mode", "cpu-scifact-r2", "--out", "x", "--init-from", "r1/colbert"])
    assert (r2.data.tuples.neg_depth, r2.data.tuples.teacher_skip, r2.init_from) == (30, 3, "r1/colbert")
    assert r2.optim == recipe.RECIPE.optim and r2.model == recipe.RECIPE.model
    with pytest.raises(SystemExit):  # the old spellings are gone
        recipe.parse_args(["--out", "x", "--use-ib-negatives", "false"])


SMALL_ARGS = ["--data.mine_depth", "10", "--nway", "2", "--data.tuples.neg_depth", "5",
              "--model.query_maxlen", "8", "--model.doc_maxlen", "24", "--fit.steps", "2",
              "--fit.batch_size", "8", "--optim.warmup_steps", "1", "--fit.fast_compile", "true"]


def test_main_runs_two_steps_from_a_beir_folder(toy_beir, tmp_path):
    """`jaxir train --recipe colbert` calls main: BM25 mining, no teacher (so n-way CE), export."""
    from jaxir.retrievers.colbert import load_checkpoint

    out = tmp_path / "run"
    recipe.main([*SMALL_ARGS, "--data", str(toy_beir), "--out", str(out)])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [2]
    config, params = load_checkpoint(out / "colbert")
    assert (config.doc_maxlen, config.query_maxlen, config.distillation) == (24, 8, False)
    assert (out / "negatives.bm25.d10.jsonl").is_file() and "projection" in params

    # The second round warm-starts from that model, projection included: zero updates (lr 0)
    # export exactly the round-1 params.
    import jax

    from jaxir.errors import CheckpointError

    warm = tmp_path / "r2"
    recipe.main([*SMALL_ARGS, "--optim.learning_rate", "0", "--init-from", str(out / "colbert"),
                 "--data", str(toy_beir), "--out", str(warm)])
    jax.tree_util.tree_map(np.testing.assert_array_equal, load_checkpoint(warm / "colbert")[1], params)
    # A folder of another method, or of another projection width, is refused before any mining.
    from jaxir.methods.i3 import I3Model
    from jaxir.methods.i3_config import I3Config
    from jaxir.models.bert import BertConfig
    from jaxir.retrievers.i3 import save_checkpoint as save_i3

    i3 = I3Model(I3Config(implicit_interaction=False), bert_config=BertConfig.tiny())
    save_i3(tmp_path / "i3", i3.config, i3.init(jax.random.PRNGKey(0)))
    for bad, dim, why in [(tmp_path / "i3", "128", "holds a 'i3' model, not a 'colbert' one"),
                          (out / "colbert", "16", "dim must match")]:
        dest = tmp_path / f"bad{dim}"
        with pytest.raises(CheckpointError, match=why) as e:
            recipe.main([*SMALL_ARGS, "--model.dim", dim, "--init-from", str(bad),
                         "--data", str(toy_beir), "--out", str(dest)])
        assert "\n" not in str(e.value) and not (dest / "metrics.jsonl").exists()
    assert not list((tmp_path / "bad128").glob("negatives.*"))  # refused before mining


def test_nway_counts_the_positive_and_checks_bounds_in_its_own_units():
    cfg, _ = recipe.parse_args(["--nway", "16", "--out", "x"])
    assert cfg.data.tuples.n_negatives == 15
    assert recipe.parse_args(["--out", "x"])[0].data.tuples.n_negatives == 7  # the default 8-way
    with pytest.raises(SystemExit):  # a tuple needs a negative: nway >= 2
        recipe.parse_args(["--nway", "1", "--out", "x"])


def test_given_negatives_replace_bm25_and_are_keyed_by_their_content(toy_beir, tmp_path):
    """`--negatives FILE` (e.g. mined by a round-1 ColBERT) is checked against the train split,
    copied into the run under its digest (no BM25 mining), and a file rewritten in place gets a
    new name, so subsets and teacher scores of the old one are never reused."""
    import dataclasses

    from jaxir.errors import DataError, OptionError
    from jaxir.eval.beir import load_beir
    from jaxir.recipes.nway_data import prepare_beir

    data = load_beir(toy_beir, split="train")
    neg = tmp_path / "round1.jsonl"
    recs = [{"qid": q, "positives": [f"d{q[1:]}_0"], "candidates": [[f"d{q[1:]}_{j}", 1.0 / j] for j in (1, 2, 3)]}
            for q in data.qrels]
    write_mined(neg, recs)
    cfg = recipe.config(overrides={"data.dataset": str(toy_beir), "data.negatives": str(neg)})
    out = tmp_path / "run"
    _, mined, teacher = prepare_beir(cfg.data, str(out))
    assert teacher is None and mined.parent == out and mined.name.startswith("negatives.round1.")
    assert list(read_mined(mined)) == recs and not list(out.glob("negatives.bm25*"))
    write_mined(neg, recs[:4])  # rewritten in place: a new copy, and a subset of the new one
    sub = dataclasses.replace(cfg.data, max_queries=2)
    _, mined2, _ = prepare_beir(sub, str(out))
    assert mined2.name.startswith(mined.stem.rsplit(".", 1)[0]) and mined.stem not in mined2.name
    assert {r["qid"] for r in read_mined(mined2)} <= {r["qid"] for r in recs[:4]}
    for bad, why in [({**recs[0], "qid": "nope"}, "query 'nope' is not a train query"),
                     ({**recs[0], "positives": ["d0_3"]}, "positive 'd0_3' of query 'q0' is not a judged-relevant"),
                     ({**recs[0], "candidates": [["ghost", 1.0]]}, "candidate 'ghost' of query")]:
        write_mined(neg, [bad])
        with pytest.raises(DataError, match=why):
            prepare_beir(cfg.data, str(out))
    with pytest.raises(DataError, match="no such file"):
        prepare_beir(dataclasses.replace(cfg.data, negatives=str(tmp_path / "missing.jsonl")), str(out))

    with pytest.raises(OptionError, match="--data.examples brings its own"):
        nway_source(None, dataclasses.replace(cfg.data, examples="x.jsonl"), 1, 1)
