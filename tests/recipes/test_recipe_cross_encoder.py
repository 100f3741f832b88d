"""Cross-encoder recipe: modes as overrides of one default, its options, and a one-step run of
the real entry point (mining, held-out alpha choice, export)."""

import json

import pytest

from jaxir.recipes import cross_encoder as recipe


def test_modes_keep_their_names_and_numbers():
    cpu, out = recipe.parse_args(["--data", "beir/x", "--out", "o"])
    assert cpu == recipe.config("cpu", {"data.dataset": "beir/x"}) and out == "o"
    assert (cpu.model.pair_maxlen, cpu.data.tuples, cpu.optim.lr_multipliers, cpu.fit.batch_size) == (
        192, recipe.TupleConfig(n_negatives=3, neg_depth=30, seed=0, draws=2), (("head", 50.0),), 4)
    for name in ("tpu", "tpu-msmarco"):
        tpu, _ = recipe.parse_args(["--mode", name, "--data", "d", "--out", "o", "--fit.seed", "2"])
        assert (tpu.model.pair_maxlen, tpu.data.tuples.n_negatives, tpu.data.tuples.neg_depth) == (256, 7, 100)
        assert (tpu.optim.learning_rate, tpu.optim.lr_multipliers, tpu.fit.compute_dtype) == (
            2e-5, (("head", 20.0),), "bfloat16")
        assert tpu.model.seed == tpu.data.tuples.seed == 2 and tpu.optim.clip_norm == 1.0
    assert recipe.parse_args(["--mode", "cpu-scifact", "--out", "o"])[0] == recipe.RECIPE
    for bad in (["--lr", "1e-5"], ["--max-length", "64"], ["--model.pair_maxlen", "2"],
                ["--optim.warmup_steps", "3"], ["--data.alpha_grid", "a,b"]):
        with pytest.raises(SystemExit):
            recipe.parse_args(["--out", "o", *bad])


def test_main_trains_tunes_alpha_and_exports(toy_beir, tmp_path):
    """`jaxir train --recipe cross-encoder` calls main: one step, 2 held-out queries choose alpha."""
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    out = tmp_path / "run"
    recipe.main(["--data.mine_depth", "10", "--data.tuples.n_negatives", "1",
                 "--data.tuples.neg_depth", "5", "--data.tuples.draws", "1", "--data.holdout", "2",
                 "--data.tune_depth", "5", "--data.alpha_grid", "0.5,1", "--model.pair_maxlen", "32",
                 "--fit.batch_size", "8", "--fit.fast_compile", "true",
                 "--data", str(toy_beir), "--out", str(out)])
    report = json.loads((out / "recipe_result.json").read_text())
    assert report["steps"] == 1  # 14 train queries x 1 draw // 8
    assert set(report["holdout_ndcg@10_by_alpha"]) == {"0.0", "0.5", "1.0"} and report["alpha"] in (0.5, 1.0)
    assert report["recipe"]["data"]["tuples"]["n_negatives"] == 1
    assert report["model"] == str(out / "cross-encoder")
    reranker = CrossEncoderScorer.load(out)
    assert reranker.config.pair_maxlen == 32 and reranker.config.alpha == report["alpha"]
