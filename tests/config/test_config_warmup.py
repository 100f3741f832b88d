"""Warm-ups that follow the run: `--fit.steps N` alone parses for every recipe, a configured warm-up
longer than the run is shortened with one note, a given one is a one-line error naming it."""
import pytest

from jaxir.errors import OptionError
from jaxir.recipes import RECIPES, recipe_module

SPARSE = ("sparse", "splade")  # a second warm-up: FLOPS
WARMED = sorted(n for n in RECIPES if recipe_module(n).WARMUPS)


def test_every_recipe_but_the_cross_encoder_names_its_warm_ups():
    """The cross-encoder's warm-up is derived (warmup_fraction of its updates): nothing to shorten."""
    assert WARMED == ["colbert", "i3", "mice", "sparse", "splade"]
    cfg, _ = recipe_module("cross-encoder").parse_args(["--fit.steps", "3", "--out", "o"])
    assert cfg.fit.steps == 3 and "optim.warmup_steps" in recipe_module("cross-encoder").DERIVED


@pytest.mark.parametrize("name", WARMED)
@pytest.mark.parametrize("mode", ["cpu-scifact", "tpu-msmarco"])
def test_fit_steps_alone_shortens_configured_warm_ups_with_one_note(name, mode, capsys):
    recipe = recipe_module(name)
    cfg, _ = recipe.parse_args(["--mode", mode, "--fit.steps", "12", "--out", "o"])
    updates = 12 // cfg.optim.accumulate  # sparse and SPLADE on CPU: 2 steps per update
    assert (cfg.optim.total_steps, cfg.optim.warmup_steps) == (updates, updates // 10)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: warm-up longer than the run, shortened to a tenth of it: ")
    configured = recipe.config(mode).optim.warmup_steps
    assert f"--optim.warmup_steps {updates // 10} (configured {configured}, the run has {updates} updates)" in err
    if name in SPARSE:
        assert cfg.model.flops_warmup_steps == updates // 10
        assert f"--model.flops_warmup_steps {updates // 10} (configured {recipe.config(mode).model.flops_warmup_steps}," in err
    else:
        assert "flops" not in err


@pytest.mark.parametrize("name", WARMED)
def test_a_warm_up_within_the_run_is_kept_silently(name, capsys):
    recipe = recipe_module(name)
    cfg, _ = recipe.parse_args(["--out", "o"])
    assert cfg.optim == recipe.RECIPE.optim and capsys.readouterr().err == ""
    flops = ["--model.flops_warmup_steps", "3"] if name in SPARSE else []
    short, _ = recipe.parse_args(["--fit.steps", "3", "--optim.warmup_steps", "1", "--optim.accumulate", "1",
                                  *flops, "--out", "o"])
    assert (short.optim.total_steps, short.optim.warmup_steps) == (3, 1) and capsys.readouterr().err == ""


@pytest.mark.parametrize("name", WARMED)
def test_a_given_warm_up_longer_than_the_run_is_a_one_line_error_naming_it(name):
    recipe = recipe_module(name)
    for option in ["--optim.warmup_steps"] + (["--model.flops_warmup_steps"] if name in SPARSE else []):
        with pytest.raises(OptionError) as e:
            recipe.parse_args(["--fit.steps", "3", "--optim.accumulate", "1", option, "20", "--out", "o"])
        assert str(e.value).startswith(f"{option} 20 is longer than the run's 3 updates (optim.total_steps = max(1, ")
        assert str(e.value).endswith("give at most 3") and "\n" not in str(e.value)


def test_the_command_line_prints_it_as_one_line_before_any_work(tmp_path, capsys):
    from jaxir.cli import main

    out = tmp_path / "run"
    argv = ["train", "--recipe", "colbert", "--data", str(tmp_path / "missing"), "--out", str(out), "--fit.steps", "3"]
    assert main([*argv, "--optim.warmup_steps", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxir train: error: --optim.warmup_steps 20 is longer than the run's 3 updates")
    assert err.count("\n") == 1 and not out.exists()
    # Not given: shortened, said once, and the run goes on (to the missing data folder here).
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("note: warm-up longer than the run, shortened to a tenth of it: "
                      "--optim.warmup_steps 0 (configured 30, the run has 3 updates)")
    assert len(err) == 2 and err[1].startswith("jaxir train: error: ") and "missing" in err[1]
