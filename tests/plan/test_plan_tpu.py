"""CI keeps TPU compilation true: every registered recipe's real train step (its task, optimizer,
shardings and `make_train_step`) is compiled by the real TPU compiler (libtpu, on this CPU) for
a v5e:2x2 topology at tiny BERT shapes. A change that breaks TPU compilation (a shape the mesh
does not divide, a host callback, a dtype TPUs lack) fails here. Skips, saying why, only where
libtpu cannot be imported (it ships for Linux x86-64 only).
"""
import importlib.util
import json

import pytest

from jaxir.cli import main
from jaxir.plan.inputs import BUILDERS
from jaxir.recipes import RECIPES

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                reason="libtpu (the TPU compiler) cannot be imported here: pip install "
                                       "'jaxir[tpu]' (PyPI wheels for Linux x86-64 only)")

TOPOLOGY = "v5e:2x2"
COMMON = ["--backbone", "tiny", "--fit.batch_size", "4"]
# Per recipe: the tpu-msmarco mode cut to tiny tuples and lengths (the same code; seconds to compile).
TINY = {
    "colbert": ["--nway", "2", "--model.query_maxlen", "8", "--model.doc_maxlen", "16"],
    "i3": ["--nway", "2", "--model.query_maxlen", "8", "--model.doc_maxlen", "16"],
    "mice": ["--nway", "2", "--model.query_maxlen", "8", "--model.doc_maxlen", "16", "--model.fusion_layer", "1"],
    "cross-encoder": ["--data.tuples.n_negatives", "1", "--model.pair_maxlen", "24"],
    "sparse": ["--data.n_negatives", "1", "--model.doc_maxlen", "16"],
    "splade": ["--data.n_negatives", "1", "--model.doc_maxlen", "16", "--model.query_maxlen", "8"],
}


def test_every_recipe_has_plan_inputs():
    assert set(BUILDERS) == set(RECIPES) == set(TINY)


def plan_json(tmp_path, recipe: str, *extra: str) -> dict:
    out = tmp_path / f"{recipe}.json"
    argv = ["plan", "--recipe", recipe, "--topology", TOPOLOGY, *COMMON, *TINY[recipe], *extra, "--json", str(out)]
    assert main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_train_step_compiles_for_tpu(tmp_path, capsys, recipe):
    f = plan_json(tmp_path, recipe)
    text = capsys.readouterr().out
    assert f["fits"] is True and f["device_kind"] == "TPU v5 lite" and f["devices"] == 4
    assert f["mesh"] == {"data": 4, "model": 1} and f["compute_dtype"] == "bfloat16"
    assert f["hbm"]["arguments_bytes"] > 0 and f["hbm"]["total_bytes"] <= f["hbm_available_bytes"]
    assert f["compiled_flops_per_device"] > f["analytic_flops_per_device"] > 0
    assert 0 < f["bounds"]["mfu_at_most"] <= 1 and f["bounds"]["step_seconds_at_least"] > 0
    assert "fits" in text and "not measurements" in text


def test_remat_reaches_the_compiled_program(tmp_path):
    """fit.remat recomputes the forward in the backward pass: the TPU program does more FLOPs."""
    off = plan_json(tmp_path, "colbert")
    on = plan_json(tmp_path, "colbert", "--fit.remat", "true")
    assert off["remat"] is None and on["remat"] == "nothing"
    assert on["compiled_flops_per_device"] > off["compiled_flops_per_device"]
