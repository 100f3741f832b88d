"""Every recipe in the registry: its --help lists every config field (options generated from the
dataclasses, derived fields with how they are set), and every mode parses."""
import importlib

import pytest

from jaxir.config_cli import leaf_names, option_string
from jaxir.recipes import RECIPES


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_help_lists_every_field(name, capsys):
    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[name]}")
    with pytest.raises(SystemExit):
        recipe.main(["--help"])
    text = capsys.readouterr().out
    for field in leaf_names(recipe.Recipe):
        want = f"{field} = " if field in recipe.DERIVED else option_string(field, recipe.FLAGS) + " "
        assert want in text, field
    for mode in recipe.MODES:
        assert f"  {mode}: " in text
        cfg, out = recipe.parse_args(["--mode", mode, "--out", "o"])
        assert isinstance(cfg, recipe.Recipe) and out == "o"


def test_sparse_help_shows_per_mode_values(capsys):
    from jaxir.recipes import sparse

    with pytest.raises(SystemExit):
        sparse.main(["--help"])
    assert "tpu-msmarco: 256" in capsys.readouterr().out  # per-mode values next to the default


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_no_recipe_field_restates_a_method_field(name):
    """One name per idea, declared once: a data/optim/fit field named like a method-config field
    is either derived from the one source (the seeds) or a different idea (`fit.batch_size`:
    train queries per step, `model.batch_size`: texts per encoder call)."""
    import dataclasses

    from jaxir.config_cli import nested_fields

    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[name]}")
    model_fields = {f.name for f in dataclasses.fields(type(recipe.RECIPE.model))}
    restated = [n for n, _, _ in nested_fields(recipe.Recipe)
                if not n.startswith("model.") and n.split(".")[-1] in model_fields]
    for dotted in restated:
        assert dotted.endswith("batch_size") or dotted in recipe.DERIVED or dotted == "fit.seed", dotted
    assert "model.seed" in recipe.DERIVED
