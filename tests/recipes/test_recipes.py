"""Every recipe in the registry: its --help lists every config field (options generated from the
dataclasses, derived fields with how they are set), and every mode parses."""
import importlib

import pytest

from jaxir.config.options import leaf_names
from jaxir.config.overrides import option_string
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

    from jaxir.config.options import nested_fields

    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[name]}")
    model_fields = {f.name for f in dataclasses.fields(type(recipe.RECIPE.model))}
    restated = [n for n, _, _ in nested_fields(recipe.Recipe)
                if not n.startswith("model.") and n.split(".")[-1] in model_fields]
    for dotted in restated:
        assert dotted.endswith("batch_size") or dotted in recipe.DERIVED or dotted == "fit.seed", dotted
    assert "model.seed" in recipe.DERIVED


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("order", ["recipe first", "help first"])
def test_jaxir_train_help_prints_the_recipes_options_and_modes(name, order, capsys):
    """`jaxir train --recipe NAME --help`: the recipe's options (from its dataclasses), not train's
    three, and one line per mode: its name and what it overrides."""
    from jaxir.cli import main
    from jaxir.config.options import describe_modes

    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[name]}")
    argv = ["--recipe", name, "--help"] if order == "recipe first" else ["--help", "--recipe", name]
    with pytest.raises(SystemExit) as e:
        main(["train", *argv])
    text = capsys.readouterr().out
    assert e.value.code == 0 and text.startswith(f"usage: jaxir train --recipe {name} ")
    for field in leaf_names(recipe.Recipe):
        assert field in recipe.DERIVED or option_string(field, recipe.FLAGS) + " " in text, field
    assert describe_modes(recipe.MODES) in text
    for mode, overrides in recipe.MODES.items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {mode}: "))
        assert all(key in line for key in overrides) or line.startswith(f"  {mode}: = "), line


def test_jaxir_train_help_without_a_recipe_says_how_to_see_one(capsys):
    from jaxir.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0 and "jaxir train --recipe NAME --help" in capsys.readouterr().out.replace("\n", " ")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_a_smoke_mode_of_test_size(name, capsys):
    from jaxir.recipes import SMOKE

    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[name]}")
    cfg, _ = recipe.parse_args(["--mode", SMOKE, "--out", "o"])
    assert cfg.fit.steps == 2 and cfg.fit.batch_size == 8 and cfg.fit.fast_compile
    assert cfg.optim.total_steps == 2 or name == "cross-encoder"  # its updates are set by train()
    caps = [v for k, v in recipe.MODES[SMOKE].items() if k in ("data.max_queries", "data.tuples.draws")]
    assert caps and max(caps) <= 16
    assert capsys.readouterr().err == ""  # its warm-ups fit its run: no note


def test_readme_lists_every_recipes_modes():
    """The README's table is `modes_markdown()` (regenerate it with the command the README gives)."""
    from pathlib import Path

    from jaxir.recipes import modes_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("<!-- modes:begin -->\n", 1)[1].split("\n<!-- modes:end -->", 1)[0]
    assert table == modes_markdown()
    for name in RECIPES:
        for mode in importlib.import_module(f"jaxir.recipes.{RECIPES[name]}").MODES:
            assert f"| {name} | `{mode}`" in table


def test_colbert_smoke_mode_trains_on_scifact_end_to_end(scifact_dir, tmp_path, capsys):
    """The cheapest recipe's smoke mode through `jaxir train` on SciFact: BM25 mining of the train
    split, 2 steps, a logged real throughput, the model folder (about 25 s of CPU)."""
    import json

    from jaxir.cli import main
    from jaxir.retrievers.colbert import load_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--recipe", "colbert", "--mode", "smoke", "--data", str(scifact_dir), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2] and rows[0]["examples_per_s"] > 0
    assert "note: warm-up" not in capsys.readouterr().err
    config, params = load_checkpoint(out / "colbert")
    assert (config.query_maxlen, config.doc_maxlen) == (8, 24) and "projection" in params
    assert len((out / "negatives.bm25.d10.q16.p0.jsonl").read_text().splitlines()) == 16
