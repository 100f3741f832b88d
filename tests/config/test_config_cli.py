"""Options generated from nested config dataclasses: typing, dotted nesting, modes, derived
fields, usage errors, and help built from the field comments with defaults."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from jaxir.config.bounds import bounded
from jaxir.config.options import Derived, field_comments, leaf_names, parse_config
from jaxir.config.overrides import apply_overrides
from jaxir.config.values import name_floats, true_false


@dataclasses.dataclass(frozen=True)
class Inner:
    # Tokens per document.
    doc_maxlen: int = 180
    # Peak rate.
    learning_rate: float = 1e-5
    # Per-teacher weights.
    weights: tuple[float, ...] | None = None
    # Per-group multipliers.
    multipliers: tuple[tuple[str, float], ...] = ()
    # Adam moments (one comment over two fields).
    b1: float = 0.9
    b2: float = 0.999

    def __post_init__(self):
        if self.doc_maxlen < 4:
            raise ValueError(f"doc_maxlen must be >= 4, got {self.doc_maxlen}")


@dataclasses.dataclass(frozen=True)
class Data:
    # Where the data is.
    dataset: str = "scifact"
    # Candidates per query, 100% of them mined.
    n_negatives: int = 3
    # Tuples.
    inner: Inner = Inner(doc_maxlen=64)


@dataclasses.dataclass(frozen=True)
class Toy:
    # The model.
    model: Inner = Inner()
    # The data.
    data: Data = Data()
    # Train steps.
    steps: int = 10
    # Total updates (derived).
    total: int = 10
    # Use the thing.
    on: bool = False
    # Start from here.
    init_from: str | None = None


MODES = {"small": {}, "big": {"model.doc_maxlen": 256, "steps": 1000}}
MODES["large"] = MODES["big"]
DERIVED = {"total": Derived("steps // 2", lambda get: get("steps") // 2)}


def parse(argv, **kw):
    ap = argparse.ArgumentParser(prog="toy")
    ap.add_argument("--out")
    return parse_config(ap, Toy, Toy(), argv, **{"modes": MODES, "derived": DERIVED, **kw})


def help_text(capsys, **kw):
    with pytest.raises(SystemExit):
        parse(["--help"], **kw)
    return capsys.readouterr().out


def test_options_are_typed_and_dotted_and_unset_ones_keep_defaults():
    cfg, args = parse([])
    assert cfg == dataclasses.replace(Toy(), total=5) and args.mode == "small" and args.out is None
    cfg, args = parse(["--model.doc_maxlen", "64", "--model.learning_rate", "3e-5", "--on", "yes",
                       "--model.weights", "1,0.5", "--model.multipliers", "head=50,bert=0",
                       "--data.inner.b2", "0.9", "--init-from", "runs/a", "--steps", "8", "--out", "o"])
    assert (cfg.model.doc_maxlen, cfg.model.learning_rate, cfg.on, cfg.init_from) == (64, 3e-5, True, "runs/a")
    assert cfg.model.weights == (1.0, 0.5) and cfg.model.multipliers == (("head", 50.0), ("bert", 0.0))
    assert cfg.data.inner == Inner(doc_maxlen=64, b2=0.9) and cfg.data.n_negatives == 3
    assert (cfg.steps, cfg.total, args.out) == (8, 4, "o")  # derived from the final steps
    assert parse(["--on", "FALSE"])[0].on is False


def test_modes_override_the_default_and_options_override_modes():
    big, args = parse(["--mode", "big"])
    assert args.mode == "big" and (big.model.doc_maxlen, big.steps, big.total) == (256, 1000, 500)
    assert big.data == Data() and big.model.learning_rate == 1e-5
    assert parse(["--mode", "large"])[0] == big  # another name of the same mode
    mixed, _ = parse(["--mode", "big", "--model.doc_maxlen", "32", "--steps", "4"])
    assert (mixed.model.doc_maxlen, mixed.steps, mixed.total) == (32, 4, 2)


@pytest.mark.parametrize("argv", [
    ["--on", "maybe"], ["--steps", "1.5"], ["--model.weights", "1,x"], ["--model.multipliers", "head"],
    ["--model.doc_maxlen", "2"],  # the config's own check, reported as a usage error
    ["--mode", "nosuch"], ["--model.nosuch", "1"], ["--doc-maxlen", "64"], ["--model.doc-maxlen", "64"],
    ["--total", "3"],  # derived: no option
    ["--model.doc", "64"],  # no abbreviations
])
def test_bad_values_and_unknown_names_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code == 2 and "usage: toy" in capsys.readouterr().err


def test_apply_overrides_rebuilds_nested_configs_and_rejects_unknown_or_derived_names():
    cfg = apply_overrides(Toy(), {"data.inner.doc_maxlen": 100, "steps": None, "model.b1": 0.5})
    assert cfg.data.inner.doc_maxlen == 100 and cfg.steps == 10 and cfg.model.b1 == 0.5
    assert apply_overrides(Toy(), {"model": Inner(doc_maxlen=8), "model.b1": 0.1}).model == Inner(doc_maxlen=8, b1=0.1)
    with pytest.raises(ValueError, match="doc_maxlen must be >= 4"):
        apply_overrides(Toy(), {"model.doc_maxlen": 1})
    with pytest.raises(ValueError, match="no setting 'model.nosuch'"):
        apply_overrides(Toy(), {"model.nosuch": 1})
    with pytest.raises(ValueError, match="not a config group"):
        apply_overrides(Toy(), {"steps.x": 1})
    with pytest.raises(ValueError, match="set by the recipe"):
        apply_overrides(Toy(), {"total": 3}, DERIVED)
    assert apply_overrides(Toy(), {"steps": 6}, DERIVED).total == 3
    # None is an override only when asked for (modes may reset a field to None).
    assert apply_overrides(Toy(init_from="x"), {"init_from": None}, skip_none=False).init_from is None


def test_help_lists_every_field_with_its_comment_default_and_mode_values(capsys):
    text = help_text(capsys, flags={"data.dataset": "--data"})
    for name in leaf_names(Toy):
        if name != "total" and name != "data.dataset":
            assert f"--{name.replace('_', '-') if '.' not in name else name} " in text, name
    assert "--data STR" in text and "Where the data is. [scifact]" in text
    assert "Tokens per document. [180; big: 256]" in text  # the alias mode is not repeated
    assert "Candidates per query, 100% of them mined. [3]" in text  # % survives argparse
    assert "[head=50" not in text and "Per-group multipliers. ['']" in text
    assert "--model.b2 FLOAT" in text and "Adam moments (one comment over two fields). [0.999]" in text
    assert "  total = steps // 2" in text and "  large: = big" in text
    assert "big: model.doc_maxlen=256 steps=1000" in text
    assert "model (Inner):" in text and "data (Data):" in text  # one section per group


def test_comment_blocks_document_the_fields_below_them():
    got = field_comments(Inner)
    assert got["doc_maxlen"] == "Tokens per document." and got["b1"] == got["b2"] == \
        "Adam moments (one comment over two fields)."


def test_fields_without_a_command_line_type_must_be_derived():
    @dataclasses.dataclass(frozen=True)
    class Odd:
        steps: int = 1
        table: dict = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match="table"):
        parse_config(argparse.ArgumentParser(), Odd, Odd(), [])
    cfg, _ = parse_config(argparse.ArgumentParser(), Odd, Odd(), ["--steps", "2"],
                          derived={"table": Derived("built at run time")})
    assert cfg.steps == 2


def test_word_parsers():
    assert true_false("TRUE") is True and true_false("0") is False
    with pytest.raises(argparse.ArgumentTypeError, match="expected true/false"):
        true_false("ture")
    assert name_floats("") == () and name_floats(" head = 2 ") == (("head", 2.0),)
    with pytest.raises(argparse.ArgumentTypeError):
        name_floats("=2")


@dataclasses.dataclass(frozen=True)
class Ranged:
    # Steps to run.
    steps: int = bounded(10, ge=1)
    # Final rate as a fraction of the peak.
    ratio: float = bounded(0.0, ge=0.0, le=1.0)
    # Clip norm (None: no clipping).
    clip: float | None = bounded(None, gt=0.0)


@dataclasses.dataclass(frozen=True)
class HasRanged:
    inner: Ranged = Ranged()


@pytest.mark.parametrize("argv, words", [
    (["--inner.steps", "0"], "argument --inner.steps: must be >= 1, got 0"),
    (["--inner.ratio", "1.5"], "argument --inner.ratio: must be <= 1.0, got 1.5"),
    (["--inner.clip", "0"], "argument --inner.clip: must be > 0.0, got 0.0"),
    (["--inner.steps", "x"], "argument --inner.steps: invalid int value: 'x'"),
])
def test_bounded_fields_are_checked_at_parse_time(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(argparse.ArgumentParser(), HasRanged, HasRanged(), argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_bounds_also_hold_for_modes_and_library_configs():
    cfg, _ = parse_config(argparse.ArgumentParser(), HasRanged, HasRanged(), ["--inner.clip", "2"])
    assert cfg.inner == Ranged(clip=2.0)
    with pytest.raises(ValueError, match="inner.steps must be >= 1, got 0"):
        apply_overrides(HasRanged(), {"inner.steps": 0})  # e.g. a mode's value
    from jaxir.training.loop import FitConfig
    from jaxir.training.optim import OptimConfig

    with pytest.raises(ValueError, match="steps must be >= 0"):
        FitConfig(steps=-2)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        OptimConfig(learning_rate=-1.0)
