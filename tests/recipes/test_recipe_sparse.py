"""Learned-sparse recipe on a toy BEIR folder with the real MiniLM: mining, teacher scores,
held-out model selection and the exported checkpoint."""
import dataclasses
import json

import numpy as np
import pytest

from jaxir.config.overrides import apply_overrides
from jaxir.eval.beir import load_beir
from jaxir.index.bm25 import BM25Index
from jaxir.methods.dense import DenseModel
from jaxir.recipes import sparse as recipe
from jaxir.recipes.sparse_batches import TupleTexts

from tests.toy_beir import TOPICS


# Two-step runs of 8 queries x 2 candidates x 24 tokens, no held-out queries.
SMALL = {"data.n_negatives": 1, "data.mine_depth": 10, "model.doc_maxlen": 24, "model.query_maxlen": 8,
         "fit.batch_size": 8, "optim.accumulate": 1, "fit.steps": 2, "optim.warmup_steps": 0,
         "model.flops_warmup_steps": 1,
         "data.holdout": 0, "optim.learning_rate": 1e-3}


@pytest.fixture(scope="module")
def toy_teachers(toy_beir, tmp_path_factory):
    """(train split, {doc id: text}, BM25 index, dense retriever, its corpus FlatIndex, the
    index cache the teachers build in)."""
    data = load_beir(toy_beir, split="train")
    texts = dict(zip(data.doc_ids, data.doc_texts()))
    bm25 = BM25Index.build(list(texts.values()), doc_ids=list(texts))
    dense = DenseModel()
    cache = tmp_path_factory.mktemp("indexes")
    return data, texts, bm25, dense, recipe.dense_corpus(data, dense, None, cache), cache


def test_candidates_and_teacher_scores(toy_teachers):
    """The default teachers, through the registry: MiniLM cosine and BM25 of every pair."""
    data, texts, bm25, dense, flat, cache = toy_teachers
    cfg = recipe.SparseData(n_negatives=3, mine_depth=10)
    qids, queries, rows = recipe.mine_candidates(data, cfg, bm25, dense, flat)
    assert len(rows) == 2 * len(TOPICS) and all(len(r) == 4 for r in rows)
    assert [data.queries[q] for q in qids] == queries
    for i, row in enumerate(rows):
        pos = f"d{i % len(TOPICS)}_0"
        assert row[0] == pos and len(set(row)) == 4 and pos not in row[1:]
    teacher = recipe.teacher_scores(recipe.DEFAULT_TEACHERS, data, queries, cache)
    t = np.stack([teacher(i, row) for i, row in enumerate(rows)])
    assert t.shape == (2 * len(TOPICS), 2, 4)
    q = dense.encode(queries[:1], what="query", progress=False)[0]
    want_dense = [float(flat.embeddings[list(flat.doc_ids).index(d)] @ q) for d in rows[0]]
    np.testing.assert_allclose(t[0, 0], want_dense, rtol=1e-5, atol=1e-6)
    all_bm25 = bm25.score_all(queries[0])
    np.testing.assert_allclose(t[0, 1], [all_bm25[list(bm25.doc_ids).index(d)] for d in rows[0]], rtol=1e-6)


def test_in_batch_tuples_carry_teacher_scores_for_every_pair(toy_teachers):
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig
    from jaxir.ops.sparse import inbatch_columns

    data, texts, bm25, dense, flat, cache = toy_teachers
    cfg = recipe.SparseData(n_negatives=2, mine_depth=10)
    qids, queries, rows = recipe.mine_candidates(data, cfg, bm25, dense, flat)
    teacher = recipe.teacher_scores(recipe.DEFAULT_TEACHERS, data, queries, cache)
    model = SparseModel(SparseConfig(doc_maxlen=24, query_maxlen=8))  # only its tokenizer and config are used
    inbatch = SparseModel(SparseConfig(doc_maxlen=24, query_maxlen=8, in_batch_negatives=True),
                          bert_config=model.bert_config, tokenizer=model.tokenizer)
    picks = np.array([5, 2])
    train_rows = [1, 4, 6, 9, 11, 13]  # the source's rows; picks index into them
    own = TupleTexts(model, cfg, train_rows, rows, texts, teacher).take(picks)
    wide = TupleTexts(inbatch, cfg, train_rows, rows, texts, teacher).take(picks)
    assert own["teachers"].shape == (2, 2, 3) and wide["teachers"].shape == (2, 2, 6)
    np.testing.assert_array_equal(own["d_ids"], wide["d_ids"])
    batch_docs = [d for p in picks for d in rows[train_rows[p]]]
    for i, p in enumerate(picks):
        want = [teacher(train_rows[p], [batch_docs[c]])[:, 0] for c in inbatch_columns(2, 3)[i]]
        np.testing.assert_allclose(wide["teachers"][i], np.stack(want, axis=1), rtol=1e-6)
    np.testing.assert_allclose(wide["teachers"][:, :, :3], own["teachers"], rtol=1e-6)
    assert wide["teachers"][0, 1, 3] == pytest.approx(  # query 13's BM25 score of query 6's positive
        bm25.score_all(queries[13])[list(bm25.doc_ids).index(rows[6][0])], rel=1e-6)


def test_train_exports_the_best_held_out_step(toy_beir, tmp_path):
    from jaxir.retrievers.sparse import SparseRetriever, load_checkpoint

    cfg = recipe.config(overrides={
        "data.dataset": str(toy_beir), "data.n_negatives": 3, "data.mine_depth": 10,
        "model.doc_maxlen": 32, "model.query_maxlen": 16, "fit.batch_size": 8, "optim.accumulate": 2,
        "fit.steps": 6, "optim.warmup_steps": 1, "data.holdout": 8, "fit.eval_every": 2,
        "optim.learning_rate": 1e-4, "model.in_batch_negatives": True, "model.flops_warmup_steps": 2,
        "data.index_cache": str(tmp_path / "indexes")})
    assert cfg.optim.total_steps == 3 and cfg.model.seed == cfg.fit.seed == 0
    path, result = recipe.train(cfg, str(tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "rank" / "metrics.jsonl").read_text().splitlines()]
    held = {r["step"]: r["holdout_rank"] for r in rows if r["split"] == "eval"}
    assert sorted(held) == [2, 4, 6]
    best = min(held, key=held.get)
    # The encoder gradient's shares from ranking and FLOPS, at init and for the exported params.
    shares = {r["split"]: r for r in rows if r["split"].startswith("grad_share")}
    assert sorted(shares) == ["grad_share_end", "grad_share_init"] and shares["grad_share_end"]["step"] == best
    for r in shares.values():
        assert abs(r["share_rank"] + r["share_flops"] - 1) < 1e-6 and r["grad_rank"] > 0
    # The new MLM head learns at 50x the encoder's rate by default.
    assert dict(recipe.RECIPE.optim.lr_multipliers) == {"head": 50.0}
    config, params = load_checkpoint(path)
    assert config == cfg.model  # the exported config is the recipe's model config
    # The export is the held-out-best step's params: equal to the final ones only if it is the last.
    final = np.asarray(result.state.params["head"]["bias"])
    assert np.array_equal(np.asarray(params["head"]["bias"]), final) == (best == 6)
    # The idf and its sidecar went in with the params (one atomic folder write), copies of the run's.
    for name in ("idf.json", "idf.json.meta.json"):
        assert (path / name).read_text() == (tmp_path / "run" / name).read_text()
    # The held-out train queries are named, for full-corpus checks that never saw them in training.
    held_ids = json.loads((tmp_path / "run" / "holdout.json").read_text())["query_ids"]
    assert len(held_ids) == 8 and set(held_ids) <= set(load_beir(toy_beir, split="train").qrels)
    # ... and it searches.
    retriever = SparseRetriever(checkpoint=str(path), progress=False, batch_size=4)
    data = load_beir(toy_beir, split="train")
    searcher = retriever.open(retriever.build(data.doc_ids, data.doc_texts(), tmp_path / "index"))
    ids, _ = searcher.search([data.queries["q3"]], 4)[0]
    assert ids[0].startswith("d3_")


def test_command_line_overrides_typed_fields():
    cfg, out = recipe.parse_args(["--out", "runs/x", "--model.in_batch_negatives", "false",
                                  "--data.n_negatives", "4", "--optim.learning_rate", "1e-4",
                                  "--data", "some/beir", "--optim.lr_multipliers", "head=5,bert=0"])
    assert (cfg.model.in_batch_negatives, cfg.data.n_negatives, cfg.optim.learning_rate, out) == (False, 4, 1e-4, "runs/x")
    assert cfg.data.dataset == "some/beir" and cfg.optim.lr_multipliers == (("head", 5.0), ("bert", 0.0))
    assert recipe.parse_args(["--out", "x"])[0] == recipe.config("cpu-scifact") == recipe.RECIPE
    tpu = recipe.parse_args(["--out", "x", "--mode", "tpu", "--fit.steps", "10000"])[0]
    assert tpu == recipe.config("tpu-msmarco", {"fit.steps": 10000})
    assert (tpu.model.doc_maxlen, tpu.optim.total_steps, tpu.fit.compute_dtype) == (256, 10000, "bfloat16")
    # Untouched by the mode: the defaults.
    assert tpu.optim.learning_rate == recipe.RECIPE.optim.learning_rate
    for bad in (["--model.in_batch_negatives", "maybe"], ["--in-batch", "true"], ["--nway", "4"],
                ["--optim.total_steps", "5"]):
        with pytest.raises(SystemExit):
            recipe.parse_args(["--out", "x", *bad])
    from jaxir.errors import OptionError

    with pytest.raises(OptionError, match="--optim.warmup_steps 500 is longer than the run's 100 updates"):
        recipe.parse_args(["--out", "x", "--optim.warmup_steps", "500"])


def test_backbone_multiplier_zero_trains_the_head_only(toy_beir, tmp_path):
    """Through the command line (`jaxir train` calls main): head-only training."""
    from jaxir.models.hf import load_bert
    from jaxir.retrievers.sparse import load_checkpoint

    recipe.main(["--data.n_negatives", "1", "--data.mine_depth", "10", "--model.doc_maxlen", "24",
                 "--model.query_maxlen", "8", "--fit.steps", "2", "--optim.accumulate", "1",
                 "--optim.warmup_steps", "0", "--model.flops_warmup_steps", "1", "--data.holdout", "0",
                 "--optim.learning_rate", "1e-3", "--optim.lr_multipliers", "bert=0", "--data", str(toy_beir), "--out", str(tmp_path / "run"),
                 "--data.index_cache", str(tmp_path / "indexes")])
    path = tmp_path / "run" / "sparse"
    assert (tmp_path / "run" / "rank" / "metrics.jsonl").is_file()
    _, params = load_checkpoint(path)
    _, pretrained = load_bert(None)
    import jax

    same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
                                  params["bert"], pretrained)
    assert all(jax.tree_util.tree_leaves(same))
    assert not np.allclose(np.asarray(params["head"]["transform"]["kernel"]), np.eye(384))


def test_init_from_starts_from_a_trained_checkpoint(toy_beir, tmp_path):
    from jaxir.errors import CheckpointError
    from jaxir.retrievers.sparse import load_checkpoint

    cfg = recipe.config(overrides={**SMALL, "data.dataset": str(toy_beir), "optim.lr_multipliers": (("bert", 0.0),),
                                   "data.index_cache": str(tmp_path / "indexes")})
    first, _ = recipe.train(cfg, str(tmp_path / "first"))
    # Learning rate 0: the second run's export is exactly where it started.
    again, _ = recipe.train(apply_overrides(cfg, {"init_from": str(first), "optim.learning_rate": 0.0}),
                            str(tmp_path / "again"))
    (_, start), (_, end) = load_checkpoint(first), load_checkpoint(again)
    kernel = lambda p: np.asarray(p["head"]["transform"]["kernel"])
    assert not np.allclose(kernel(start), np.eye(384))  # the first run moved the head ...
    np.testing.assert_array_equal(kernel(end), kernel(start))  # ... and the second kept it
    with pytest.raises((CheckpointError, FileNotFoundError)):
        recipe.train(dataclasses.replace(cfg, init_from=str(tmp_path / "missing")), str(tmp_path / "x"))


def test_lexical_prior_run_trains_and_indexes_with_the_prior(toy_beir, tmp_path):
    """Batches carry fixed-width prior rows; the exported model indexes prior + head weights."""
    from jaxir.retrievers.sparse import SparseRetriever, load_checkpoint

    cfg = recipe.config(overrides={**SMALL, "data.dataset": str(toy_beir), "model.lexical_prior": True,
                                   "model.prior_weight": 2.0, "model.prior_stem": True,
                                   "data.index_cache": str(tmp_path / "indexes")})
    path, result = recipe.train(cfg, str(tmp_path / "run"))
    config, _ = load_checkpoint(path)
    assert config.lexical_prior and config.prior_weight == 2.0 and config.prior_stem
    data = load_beir(toy_beir, split="train")
    with_prior = SparseRetriever(checkpoint=str(path), progress=False, batch_size=4, dtype="float32")
    index = with_prior.open(with_prior.build(data.doc_ids, data.doc_texts(), tmp_path / "index")).index
    assert index.meta["prior_avgdl"] > 0 and index.meta["prior_stem"] is True
    assert index.search(data.queries["q3"], 4)[0][0].startswith("d3_")
    # Every document term carries its prior weight at least (the head's part is >= 0).
    from jaxir.methods.lexical_prior import LexicalPrior
    from jaxir.methods.stem_classes import StemClasses
    from jaxir.text import tokenize

    tokens = tokenize(index.tokenizer, data.doc_texts())
    prior = LexicalPrior(avgdl=index.meta["prior_avgdl"], weight=2.0,
                         stems=StemClasses.from_tokenizer(index.tokenizer, skip_ids=index.skip_ids))
    terms, weights = prior.vector(tokens[5], skip_ids=index.skip_ids, keep_ids=np.flatnonzero(index.idf > 0))
    dense_row = np.zeros(len(index.idf))
    inv = index.inverted
    for t in terms:
        docs = inv.postings[inv.offsets[t]:inv.offsets[t + 1]]
        dense_row[t] = inv.weights[inv.offsets[t]:inv.offsets[t + 1]][docs == 5].sum() * inv.scale
    assert (dense_row[terms] >= weights - 1e-5).all()


def test_teachers_are_checked_before_any_data_is_read(tmp_path):
    from jaxir.errors import OptionError

    cfg, _ = recipe.parse_args(["--out", "x", "--data.teachers", "i3:runs/a/i3,splade:runs/b/splade",
                                "--model.teacher_weights", "1,1"])
    assert cfg.data.teachers == ("i3:runs/a/i3", "splade:runs/b/splade")
    recipe.check_teachers(cfg)  # names and weights agree (checkpoints are read when scored)
    for teachers, weights, why in ((("dense", "bm25", "splade:x"), (1.0, 1.0), "3 teachers"),
                                   (("cross-encoder",), None, "not a first-stage method"),
                                   (("colbrt:x",), None, "not a first-stage method")):
        bad = apply_overrides(cfg, {"data.teachers": teachers, "model.teacher_weights": weights})
        with pytest.raises(OptionError, match=why):
            recipe.train(bad, str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
    with pytest.raises(SystemExit):
        recipe.parse_args(["--out", "x", "--data.teachers", "dense,,bm25"])


def test_flops_warm_up_longer_than_the_run_is_refused_before_any_data_is_read(tmp_path):
    """The default warm-up ends at a tenth of the run (the reference: T 200 of 2,000 steps); one
    given longer than the run's updates never reaches lambda_d and is refused: by the command line
    before anything runs, by train() (a config built in Python) before any mining."""
    from jaxir.config.warmup import check_warmups
    from jaxir.errors import OptionError

    for mode, updates in (("cpu-scifact", 100), ("cpu-nfcorpus", 50)):
        cfg = recipe.config(mode)
        assert cfg.optim.total_steps == updates and cfg.model.flops_warmup_steps == updates // 10
        check_warmups(cfg, recipe.WARMUPS)
    with pytest.raises(OptionError, match="--model.flops_warmup_steps 11 is longer than the run's 10 updates") as e:
        recipe.parse_args(["--out", "x", "--fit.steps", "20", "--model.flops_warmup_steps", "11"])
    assert "\n" not in str(e.value)
    with pytest.raises(OptionError, match="flops_warmup_steps 11 is longer than the run's 10 updates"):
        recipe.config(overrides={"fit.steps": 20, "model.flops_warmup_steps": 11})  # as given options
    cfg = apply_overrides(recipe.RECIPE, {"fit.steps": 20, "model.flops_warmup_steps": 11}, recipe.DERIVED)
    with pytest.raises(OptionError, match="flops_warmup_steps 11 is longer than the run's 10 updates") as e:
        recipe.train(cfg, str(tmp_path / "never"))
    assert "\n" not in str(e.value) and not (tmp_path / "never").exists()
    ok, _ = recipe.parse_args(["--out", "x", "--fit.steps", "20", "--model.flops_warmup_steps", "10"])
    check_warmups(ok, recipe.WARMUPS)
