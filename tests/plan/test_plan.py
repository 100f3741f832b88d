"""`jaxir plan`: bad input is one line (rc 2) before anything compiles; the figures' arithmetic.

The compile itself (every recipe, the real TPU compiler) is tests/plan/test_plan_tpu.py.
"""
import importlib.util
import json

import pytest

from jaxir.cli import main
from jaxir.errors import JaxirError
from jaxir.plan import chips, compile as plan_compile
from jaxir.plan.backbone import PRESETS, backbone_config

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
needs_libtpu = pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu (the TPU compiler) is not installed: "
                                                        "pip install 'jaxir[tpu]' (Linux x86-64 only)")
TINY = ["--backbone", "tiny", "--fit.batch_size", "4", "--nway", "2", "--model.doc_maxlen", "16"]


@pytest.fixture
def no_compile(monkeypatch):
    """Any compile (the step, or the HBM probe) fails the test: bad input must stop before."""
    def refuse(*a, **k):
        raise AssertionError("compiled although the input was bad")
    monkeypatch.setattr(plan_compile, "compile_step", refuse)
    monkeypatch.setattr(chips, "available_hbm_bytes", refuse)


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jaxir plan: error: ") and "--debug" not in err, err
    return err


def test_unknown_mode(capsys, no_compile):
    err = one_line_error(capsys, ["--recipe", "colbert", "--mode", "tpu-huge", "--topology", "v5e:2x2", *TINY])
    assert "no mode 'tpu-huge'" in err and "tpu-msmarco" in err and "cpu-scifact" in err


def test_unknown_topology_lists_valid_ones(capsys, no_compile):
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v9z:2x2", *TINY])
    assert "unknown topology 'v9z:2x2'" in err and "v5e:{2x2" in err and "v5p:{2x2x1" in err


@needs_libtpu
def test_topology_libtpu_refuses_lists_valid_ones(capsys, no_compile):
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v5e:3x3", *TINY])
    assert "unknown topology 'v5e:3x3'" in err and "v5e:{2x2" in err


@pytest.mark.parametrize("spec, said", [("gpt2", "not a preset"), ("roberta", "not a BERT config")])
def test_backbone_that_is_not_a_bert(capsys, no_compile, tmp_path, spec, said):
    if spec == "roberta":
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 768}))
        spec = str(tmp_path)
    argv = ["--recipe", "colbert", "--topology", "v5e:2x2", *TINY[2:], "--backbone", spec]
    assert said in one_line_error(capsys, argv)


def test_backbone_config_json_without_bert_sizes(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    with pytest.raises(JaxirError, match="num_hidden_layers"):
        backbone_config(str(path), "float32")
    path.write_text(json.dumps({**PRESETS["tiny"], "num_attention_heads": 5}))
    with pytest.raises(JaxirError, match="not divisible"):
        backbone_config(str(path), "float32")
    path.write_text(json.dumps({**PRESETS["tiny"], "num_attention_heads": 8}))
    cfg, _, _ = backbone_config(str(tmp_path), "float32")  # a folder holding it is the same
    assert cfg.num_heads == 8 and cfg.hidden_size == 32


@needs_libtpu
def test_mesh_that_does_not_divide_the_devices(capsys, no_compile):
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v5e:2x2", "--mesh.data", "3", *TINY])
    assert "does not divide v5e:2x2's 4 devices" in err
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v5e:2x2", "--mesh.model", "3", *TINY])
    assert "4 devices" in err


@needs_libtpu
def test_global_batch_not_divisible_by_the_data_axis(capsys, no_compile):
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v5e:2x2", *TINY, "--fit.batch_size", "6"])
    assert "global batch 6" in err and "data axis (4 shards)" in err


def test_missing_libtpu_says_how_to_install(capsys, no_compile, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "libtpu" else real(name, *a))
    err = one_line_error(capsys, ["--recipe", "colbert", "--topology", "v5e:2x2", *TINY])
    assert "pip install 'jaxir[tpu]'" in err and "libtpu==" in err


def test_parse_oom_reads_the_compilers_refusal():
    msg = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO temporaries "
           "(24.86G) exceeds available HBM (15.75G).")
    oom = chips.parse_oom(msg)
    assert oom["what"] == "HLO temporaries"
    assert oom["need_bytes"] == pytest.approx(24.86 * 2 ** 30) and oom["available_bytes"] == pytest.approx(15.75 * 2 ** 30)
    assert chips.parse_oom("INVALID_ARGUMENT: something else") is None


def test_roofline_figures():
    """The bound is max(FLOPs / peak, bytes / bandwidth); MFU and tokens/s follow from it."""
    from jaxir.models.bert import BertConfig
    from jaxir.plan.compile import Compiled
    from jaxir.plan.report import encoder_params, figures, format_text

    bert = BertConfig.from_hf(PRESETS["bert-base"])
    assert encoder_params(bert) == 85_054_464  # bert-base's 12 layers (110M less embeddings and pooler)
    chip = chips.CHIPS["v5e"]
    gib = 2 ** 30
    compiled = Compiled(1.0, {"arguments": gib, "temporaries": 10 * gib, "outputs": gib, "aliased": gib, "code": 0},
                        {"flops": 197e12 * 0.05, "bytes": 819e9 * 0.01}, None)
    setup = {"recipe": "colbert", "mode": "tpu-msmarco", "topology": "v5e:2x2", "libtpu": "x", "remat": None,
             "mesh": {"data": 4, "model": 1}, "backbone": {"name": "bert-base", "shape": "768"},
             "compute_dtype": "bfloat16", "global_batch": 32}
    f = figures(setup=setup, compiled=compiled, chip=chip, devices=4, chips=4, available=15.75 * gib, bert=bert,
                encoder_tokens=4000 * 4)
    assert f["fits"] and f["hbm"]["total_bytes"] == 11 * gib
    b = f["bounds"]
    assert b["bound_by"] == "compute" and b["step_seconds_at_least"] == pytest.approx(0.05)
    assert b["tokens_per_s_per_device_at_most"] == pytest.approx(4000 / 0.05)
    assert b["mfu_at_most"] == pytest.approx(6 * 85_054_464 * 4000 / (0.05 * 197e12))
    text = format_text(f)
    assert "fits" in text and "not measurements" in text and "step time    >= 50.00 ms" in text
    refused = figures(setup=setup, compiled=Compiled(1.0, None, None, {"what": "HLO temporaries",
                                                                       "need_bytes": 24 * gib,
                                                                       "available_bytes": 15.75 * gib}, gib),
                      chip=chip, devices=4, chips=4, available=15.75 * gib, bert=bert, encoder_tokens=16000)
    assert refused["fits"] is False and "needs >= 25.00 GiB per device" in format_text(refused)
