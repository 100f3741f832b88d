"""I³ recipe and retriever on the toy BEIR folder with the real MiniLM: modes, pseudo-query
targets and their errors, a two-step run of the entry point for I³ and for the plain baseline,
build + search through the registry, and the bad-input errors of the issue."""
import json

import numpy as np
import pytest

from jaxir.errors import CheckpointError, DataError, IndexFormatError, OptionError
from jaxir.eval.beir import load_beir
from jaxir.recipes import i3 as recipe
from jaxir.retrievers.registry import get_retriever

SMALL = ["--data.mine_depth", "10", "--nway", "2", "--data.tuples.neg_depth", "5",
         "--model.query_maxlen", "8", "--model.doc_maxlen", "24", "--fit.steps", "2", "--fit.batch_size", "8",
         "--optim.warmup_steps", "1", "--fit.fast_compile", "true"]


def test_modes_and_the_baseline_flag():
    cpu, out = recipe.parse_args(["--out", "o"])
    assert cpu == recipe.RECIPE and out == "o"
    assert (cpu.model.query_maxlen, cpu.model.doc_maxlen, cpu.model.contrastive_weight,
            cpu.model.reconstruction_weight, cpu.model.reconstruction_decay, cpu.data.tuples.n_negatives) == (32, 256, 1.0, 0.1, 0.1, 3)
    tpu, _ = recipe.parse_args(["--mode", "tpu-msmarco", "--out", "o", "--fit.seed", "4"])
    assert (tpu.data.tuples.n_negatives, tpu.fit.batch_size, tpu.fit.compute_dtype) == (15, 64, "bfloat16")
    assert tpu.model.seed == tpu.data.tuples.seed == 4
    plain, _ = recipe.parse_args(["--out", "o", "--model.implicit_interaction", "false"])
    assert plain.model.implicit_interaction is False
    assert plain.data == cpu.data and plain.optim == cpu.optim and plain.fit == cpu.fit
    with pytest.raises(SystemExit):
        recipe.parse_args(["--out", "o", "--model.objective", "ranknet"])


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_pseudo_query_file_errors_name_the_line(tmp_path):
    docs = ["d0_0", "d1_0"]
    good = _write(tmp_path / "ok.jsonl", [json.dumps({"doc_id": "d0_0", "queries": ["a?", "b?"]}), "",
                                          json.dumps({"doc_id": "d0_0", "queries": ["c?"]})])
    assert recipe.load_pseudo_queries(good, docs) == {"d0_0": ["a?", "b?", "c?"]}
    for line, want in [("{not json", "ok.jsonl:1: expected"), (json.dumps({"doc_id": "d0_0"}), ":1: expected"),
                       (json.dumps({"doc_id": "d0_0", "queries": []}), ":1: expected"),
                       (json.dumps({"doc_id": "d0_0", "queries": [" "]}), ":1: expected"),
                       (json.dumps({"doc_id": "nope", "queries": ["q"]}), "doc_id 'nope' is not in the corpus")]:
        bad = _write(tmp_path / "ok.jsonl", [line])
        with pytest.raises(DataError, match=want.replace("{", r"\{")):
            recipe.load_pseudo_queries(bad, docs)


def test_pseudo_queries_become_the_reconstruction_targets(toy_beir, tmp_path):
    from jaxir.data.mine import write_mined
    from jaxir.methods.i3 import I3Model
    from jaxir.methods.i3_config import I3Config
    from jaxir.models.bert import BertConfig
    from jaxir.recipes.nway_data import nway_source

    data = load_beir(toy_beir, split="train")
    mined = tmp_path / "negatives.jsonl"
    write_mined(mined, [{"qid": f"q{i}", "positives": [f"d{i}_0"],
                         "candidates": [[f"d{i}_{j}", -j] for j in range(1, 4)]} for i in range(8)])
    model = I3Model(I3Config(query_maxlen=8, doc_maxlen=16), bert_config=BertConfig(), bert_params=None)
    pseudo = {f"d{i}_{j}": [f"generated question {i} {j}"] for i in range(8) for j in range(4)}
    # Every passage a tuple can draw needs a target: a negative without one is refused up front.
    with pytest.raises(DataError, match="no entry for 1 passage") as e:
        recipe.PseudoQueryTargets(model, {k: v for k, v in pseudo.items() if k != "d3_2"}, mined, 3)
    assert "\n" not in str(e.value)
    recipe.PseudoQueryTargets(model, {k: v for k, v in pseudo.items() if k != "d3_3"}, mined, 2)  # beyond depth
    cfg = recipe.config(overrides={"data.tuples.n_negatives": 2, "data.tuples.neg_depth": 3})
    src = nway_source(lambda q, d: recipe.i3_arrays(model, q, d), cfg.data, 1, 8, (data, mined, None),
                      extra=recipe.PseudoQueryTargets(model, pseudo, mined, 3))
    batch = src.take(np.arange(3))
    assert batch["q_ids"].shape == (3, 8) and batch["d_ids"].shape == (3, 3, 16)
    assert batch["rec_ids"].shape == batch["rec_mask"].shape == (3, 3, 8)
    tok = model.tokenizer
    for row in range(3):
        t = src.tuple_at(row, 0)
        for col, doc in enumerate(t.doc_ids):  # each passage its own target, bare tokens from position 0
            ids = batch["rec_ids"][row, col][batch["rec_mask"][row, col] == 1]
            assert batch["rec_mask"][row, col, 0] == 1 and tok.cls_token_id not in ids and tok.sep_token_id not in ids
            assert tok.decode(ids) == pseudo[doc][0]
        query = tok.decode(batch["q_ids"][row][batch["q_mask"][row] == 1][1:-1])  # cut to 8 tokens
        assert len(query) > 10 and data.queries[t.qid].lower().startswith(query)


@pytest.fixture(scope="module")
def trained(toy_beir, tmp_path_factory):
    """{"i3": model folder, "plain": model folder} after two steps each through `jaxir train`."""
    from jaxir.cli import main

    out = {}
    for name, flags in [("i3", []), ("plain", ["--model.implicit_interaction", "false"])]:
        run = tmp_path_factory.mktemp(name)
        assert main(["train", "--recipe", "i3", *SMALL, *flags, "--data", str(toy_beir), "--out", str(run)]) == 0
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if r["split"] == "train"] == [2]
        assert (run / "loss.png").is_file() and (run / "negatives.bm25.d10.jsonl").is_file()
        out[name] = run / "i3"
    return out


def test_main_trains_both_variants_and_they_search(trained, toy_beir, tmp_path):
    from jaxir.retrievers.i3 import load_checkpoint

    (cfg, params), (plain_cfg, plain) = load_checkpoint(trained["i3"]), load_checkpoint(trained["plain"])
    assert (cfg.doc_maxlen, cfg.query_maxlen, cfg.implicit_interaction) == (24, 8, True)
    assert {"reconstructor", "interactor", "mlm"} <= set(params) and plain_cfg.implicit_interaction is False
    assert set(plain) == {"query", "passage"}
    data = load_beir(toy_beir, split="train")
    for name in ("i3", "plain"):
        retriever = get_retriever("i3", checkpoint=str(trained[name]), batch_size=8)
        retriever.progress = False
        index = retriever.build(data.doc_ids, data.doc_texts(), tmp_path / name)
        ids, scores = retriever.open(index).search([data.queries["q3"]], 5)[0]
        assert len(ids) == 5 and np.all(np.diff(scores) <= 1e-6)
        assert ids[0].startswith("d3_"), (name, ids)


def test_bad_inputs_get_one_line_errors(trained, toy_beir, tmp_path):
    import jax

    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig
    from jaxir.retrievers.colbert import save_checkpoint as save_colbert

    data = load_beir(toy_beir, split="train")
    # Another method's checkpoint given to --method i3, and an I³ one given to --method colbert.
    colbert = ColBERTModel(ColBERTConfig(doc_maxlen=24))
    save_colbert(tmp_path / "colbert", colbert.config, colbert.init(jax.random.PRNGKey(0)))
    for method, ckpt, holds in [("i3", tmp_path / "colbert", "'colbert'"), ("colbert", trained["i3"], "'i3'")]:
        with pytest.raises(CheckpointError, match=f"holds a {holds} model, not a '{method}' one") as e:
            get_retriever(method, checkpoint=str(ckpt)).build(data.doc_ids[:2], data.doc_texts()[:2], tmp_path / "x")
        assert "\n" not in str(e.value)
    # An index built by another model (other weights; another kind) is refused on open.
    i3 = get_retriever("i3", checkpoint=str(trained["i3"]))
    i3.progress = False
    index = i3.build(data.doc_ids, data.doc_texts(), tmp_path / "i3-index")
    with pytest.raises(IndexFormatError, match="was built with model"):
        get_retriever("i3", checkpoint=str(trained["plain"])).open(index)
    with pytest.raises(IndexFormatError, match="holds a 'i3' index, expected 'dense'"):
        get_retriever("dense").open(index)
    # Distillation without teacher scores, and a start of the other variant.
    with pytest.raises(OptionError, match="needs teacher scores"):
        recipe.main([*SMALL, "--model.objective", "distill", "--data", str(toy_beir), "--out", str(tmp_path / "kd")])
    with pytest.raises(CheckpointError, match="implicit_interaction and tie must match"):
        recipe.main([*SMALL, "--init-from", str(trained["plain"]), "--data", str(toy_beir),
                     "--out", str(tmp_path / "warm")])
    # Another method's folder as --init-from fails before any data work (nothing mined).
    with pytest.raises(CheckpointError, match="holds a 'colbert' model, not a 'i3' one") as e:
        recipe.main([*SMALL, "--init-from", str(tmp_path / "colbert"), "--data", str(toy_beir),
                     "--out", str(tmp_path / "warm2")])
    assert "\n" not in str(e.value) and not list((tmp_path / "warm2").glob("negatives.*"))
    # A learning-rate multiplier naming no parameter group, and a dropout outside [0, 1).
    with pytest.raises(OptionError, match="'haed' names no parameter group") as e:
        recipe.main([*SMALL, "--optim.lr_multipliers", "haed=50", "--data", str(toy_beir),
                     "--out", str(tmp_path / "typo")])
    assert "\n" not in str(e.value) and not (tmp_path / "typo" / "metrics.jsonl").exists()
    for bad in ("1.0", "-0.1"):
        with pytest.raises(SystemExit):
            recipe.parse_args(["--model.dropout", bad, "--out", "o"])


def test_the_plain_baseline_drops_only_the_new_modules_multipliers():
    plain = recipe.config(overrides={"model.implicit_interaction": False,
                                     "optim.lr_multipliers": (("mlm", 50.0), ("query", 2.0))})
    assert recipe.optimizer_for(plain).lr_multipliers == (("query", 2.0),)
    assert dict(recipe.optimizer_for(recipe.config()).lr_multipliers) == {
        "reconstructor": 50.0, "interactor": 50.0, "mlm": 50.0}
