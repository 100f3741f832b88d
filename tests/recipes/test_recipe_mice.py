"""MICE recipe, state store and reranker on the toy BEIR folder with the real MiniLM: modes, a
two-step run from a saved cross-encoder, stored states (fp16, pruned, keys/values) against the
on-the-fly path, reranking through `jaxir eval`, and the bad-input errors of the issue."""
import dataclasses
import json

import numpy as np
import pytest

from jaxir.errors import CheckpointError, DataError, IndexFormatError, OptionError
from jaxir.eval.beir import load_beir
from jaxir.recipes import mice as recipe
from jaxir.retrievers.registry import get_retriever

SMALL = ["--data.mine_depth", "10", "--nway", "2", "--data.tuples.neg_depth", "5",
         "--model.query_maxlen", "12", "--model.doc_maxlen", "24", "--fit.steps", "2", "--fit.batch_size", "8",
         "--optim.warmup_steps", "1", "--fit.fast_compile", "true", "--data.holdout", "2"]


def test_modes_and_defaults():
    cpu, out = recipe.parse_args(["--out", "o", "--init-from", "ce"])
    assert out == "o" and cpu.init_from == "ce"
    assert (cpu.model.fusion_layer, cpu.model.configuration, cpu.model.query_maxlen + cpu.model.doc_maxlen,
            cpu.data.tuples.n_negatives, cpu.data.tuples.neg_depth, cpu.data.holdout) == (3, "mice", 192, 3, 10, 50)
    tpu, _ = recipe.parse_args(["--mode", "tpu-msmarco", "--out", "o"])
    assert (tpu.data.tuples.n_negatives, tpu.fit.batch_size, tpu.fit.compute_dtype) == (7, 64, "bfloat16")
    with pytest.raises(SystemExit):
        recipe.parse_args(["--out", "o", "--model.configuration", "nope"])


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    """A saved (untrained-head) MiniLM cross-encoder: what the recipe starts from and distils."""
    import jax

    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=36))
    folder = tmp_path_factory.mktemp("ce") / "cross-encoder"
    CrossEncoderScorer(model, model.init(jax.random.PRNGKey(0))).save(folder)
    return folder


@pytest.fixture(scope="module")
def trained(toy_beir, cross_encoder, tmp_path_factory):
    from jaxir.cli import main

    run = tmp_path_factory.mktemp("mice")
    assert main(["train", "--recipe", "mice", *SMALL, "--init-from", str(cross_encoder), "--data", str(toy_beir),
                 "--out", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [2]
    assert (run / "loss.png").is_file() and list(run.glob("teacher*.jsonl"))
    report = json.loads((run / "recipe_result.json").read_text())
    assert report["held_out"] == 2 and set(report["heldout_ndcg@10"]) == {"bm25", "mice"}
    train_qids = {json.loads(line)["qid"] for line in (run / "negatives.bm25.d10.train.jsonl").read_text().splitlines()}
    assert len(train_qids) == 14  # 16 toy train queries minus the 2 held out
    return run / "mice"


def _mice(ckpt, **kw):
    r = get_retriever("mice", checkpoint=str(ckpt), **kw)
    r.progress = False
    return r


def test_trained_model_starts_from_the_cross_encoder_and_moves(trained, cross_encoder):
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer
    from jaxir.retrievers.mice import load_mice

    model, params = load_mice(trained)
    assert (model.config.fusion_layer, model.config.doc_maxlen, model.config.query_maxlen) == (3, 24, 12)
    start = CrossEncoderScorer.load(cross_encoder).params
    assert set(params) == set(start) == {"bert", "head"}
    moved = np.abs(np.asarray(params["head"]["dense"]["kernel"]) - np.asarray(start["head"]["dense"]["kernel"]))
    assert 0 < moved.max() < 0.1


def test_stored_states_rerank_like_the_texts(trained, toy_beir, tmp_path):
    from jaxir.retrievers.mice import MiceScorer, load_mice

    data = load_beir(toy_beir, split="train")
    model, params = load_mice(trained)
    ids = data.doc_ids[:7]
    texts = [data.text_of(d) for d in ids]
    query = data.queries["q1"]
    ref = MiceScorer(model, params).scores([query], [texts])[0]  # no store: states on the fly
    assert np.ptp(ref) > 1e-4
    for name, opts, tol in [("fp32", {"state_dtype": "float32"}, 1e-4), ("fp16", {}, 2e-2),
                            ("kv", {"precompute_kv": True, "state_dtype": "float32"}, 1e-4)]:
        retriever = _mice(trained, **opts)
        store = retriever.build(data.doc_ids, data.doc_texts(), tmp_path / name)
        reranker = retriever.open_reranker(store)
        assert reranker.takes_doc_ids and reranker.use_kv == (name == "kv")
        np.testing.assert_allclose(reranker.rerank_many([query], [ids])[0], ref, atol=tol, err_msg=name)
        info = reranker.describe()["states"]
        assert info["states_bytes_per_token"] == 384 * (2 if name == "fp16" else 4)
    pruned = _mice(trained, prune_tokens=4)
    reranker = pruned.open_reranker(pruned.build(data.doc_ids, data.doc_texts(), tmp_path / "pruned"))
    assert reranker.store.width == 4 and reranker.describe()["states"]["tokens_per_doc"] <= 4
    assert reranker.rerank_many([query], [ids])[0].shape == (7,)


def test_eval_reranks_bm25_through_the_registry(trained, toy_beir, tmp_path):
    from jaxir.pipeline.evaluate import FirstStage, IndexSource, eval_method

    result = eval_method("mice", toy_beir, split="train", k=10, index=IndexSource(tmp_path / "states", tmp_path),
                         first_stage=FirstStage("bm25", 5), checkpoint=str(trained), progress=False)
    assert result["rerank"]["depth"] == 5 and result["rerank"]["fusion_layer"] == 3
    assert (tmp_path / "states" / "manifest.json").is_file()
    assert 0.0 <= result["metrics"]["ndcg@10"] <= 1.0


def test_bad_inputs_get_one_line_errors(trained, cross_encoder, toy_beir, tmp_path):
    import dataclasses

    from jaxir.retrievers.mice import load_mice, save_checkpoint

    data = load_beir(toy_beir, split="train")
    # A cross-encoder checkpoint has no MICE config; a MICE one is not a cross-encoder.
    with pytest.raises(CheckpointError, match="cross-encoder without a MICE config.*--init-from") as e:
        _mice(cross_encoder).open_reranker()
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="holds a 'mice' model, not a 'cross-encoder' one"):
        get_retriever("cross-encoder", checkpoint=str(trained)).open_reranker()
    # The recipe needs the cross-encoder to start from.
    with pytest.raises(OptionError, match="give --init-from"):
        recipe.main([*SMALL, "--data", str(toy_beir), "--out", str(tmp_path / "none")])
    store = _mice(trained).build(data.doc_ids, data.doc_texts(), tmp_path / "states")
    # States built by another checkpoint (other weights), or with another l_f.
    model, params = load_mice(trained)
    other = dict(params, head={"dense": {k: v + 1 for k, v in params["head"]["dense"].items()}})
    save_checkpoint(tmp_path / "other", model.config, other)
    with pytest.raises(IndexFormatError, match="was built with model"):
        _mice(tmp_path / "other").open_reranker(store)
    save_checkpoint(tmp_path / "lf2", dataclasses.replace(model.config, fusion_layer=2), params)
    with pytest.raises(IndexFormatError, match="built with fusion_layer 3, but the model uses 2"):
        _mice(tmp_path / "lf2").open_reranker(store)
    # ... or with the other document layout.
    save_checkpoint(tmp_path / "bare", dataclasses.replace(model.config, doc_layout="bare"), params)
    with pytest.raises(IndexFormatError, match="built with doc_layout 'sinks', but the model uses 'bare'"):
        _mice(tmp_path / "bare").open_reranker(store)
    # A candidate the store does not hold.
    reranker = _mice(trained).open_reranker(store)
    with pytest.raises(DataError, match="not in the document-state store.*'nope'"):
        reranker.rerank_many([data.queries["q1"]], [["d1_0", "nope"]])
    # A truncated state file.
    states = store / "states.npy"
    states.write_bytes(states.read_bytes()[:-100])
    with pytest.raises(IndexFormatError, match="truncated"):
        _mice(trained).open_reranker(store)


def test_teacher_scores_are_reused_only_for_the_same_teacher(toy_beir, cross_encoder, tmp_path, capsys):
    """A retrained (or another) teacher at the same path never reuses the old teacher's scores."""
    import jax

    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig
    from jaxir.recipes.nway_data import prepare_beir
    from jaxir.retrievers.cross_encoder import CrossEncoderScorer

    cfg = recipe.config("cpu-scifact", {"data.dataset": str(toy_beir), "data.mine_depth": 10,
                                        "data.tuples.neg_depth": 2, "data.teacher_checkpoint": str(cross_encoder)})
    first = prepare_beir(cfg.data, str(tmp_path))[2]
    assert prepare_beir(cfg.data, str(tmp_path))[2] == first and "reused" in capsys.readouterr().out
    other = tmp_path / "other" / "cross-encoder"
    model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=36))
    CrossEncoderScorer(model, model.init(jax.random.PRNGKey(1))).save(other)
    second = prepare_beir(dataclasses.replace(cfg.data, teacher_checkpoint=str(other)), str(tmp_path))[2]
    assert second != first and first.is_file() and second.is_file()
    assert first.read_text() != second.read_text()


def test_layer_dropping_is_a_trained_choice(trained, cross_encoder, toy_beir, tmp_path):
    """The trained L' is what reranking runs; another depth is refused unless asked for by name,
    and an L' outside 1..L or below l_f is refused before any mining."""
    from jaxir.errors import OptionError

    model = _mice(trained)._loaded[0]
    assert model.last_layer == 6
    assert _mice(trained, num_layers=6)._loaded[0].last_layer == 6
    with pytest.raises(OptionError, match="trained with L' = 6 layers; --num-layers 5") as e:
        _mice(trained, num_layers=5)._loaded
    assert "\n" not in str(e.value)
    assert _mice(trained, num_layers=5, untrained_layers=True)._loaded[0].last_layer == 5
    out = tmp_path / "L7"
    with pytest.raises(ValueError, match=r"exceed the backbone's 6 layers \(num_layers is in 3..6\)") as e:
        recipe.main([*SMALL, "--model.num_layers", "7", "--init-from", str(cross_encoder),
                     "--data", str(toy_beir), "--out", str(out)])
    assert "\n" not in str(e.value) and not list(out.glob("negatives.*"))
    for bad in ("2", "0"):  # below l_f = 3, below 1: refused as the options are parsed
        with pytest.raises(SystemExit):
            recipe.parse_args(["--out", "o", "--model.num_layers", bad])
