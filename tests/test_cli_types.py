"""Recipe options typed from their dataclass fields; true/false parsed strictly."""
import argparse
import dataclasses

import pytest

from jaxir.cli_types import add_config_options, true_false, with_overrides


@dataclasses.dataclass(frozen=True)
class Toy:
    steps: int = 3
    rate: float = 0.5
    alpha: float | None = None
    on: bool = False
    name: str = "x"
    grid: tuple = (1, 2)


def parse(argv):
    ap = argparse.ArgumentParser()
    add_config_options(ap, Toy, skip=("grid",))
    return with_overrides(Toy(), vars(ap.parse_args(argv)))


def test_options_take_their_field_types_and_unset_ones_keep_defaults():
    assert parse([]) == Toy()
    got = parse(["--steps", "7", "--rate", "1e-3", "--alpha", "0.25", "--on", "yes", "--name", "12"])
    assert got == Toy(steps=7, rate=1e-3, alpha=0.25, on=True, name="12")
    assert parse(["--on", "false"]).on is False


@pytest.mark.parametrize("argv", [["--on", "maybe"], ["--steps", "1.5"], ["--grid", "1,2"]])
def test_bad_values_and_skipped_fields_are_usage_errors(argv):
    with pytest.raises(SystemExit):
        parse(argv)


def test_true_false_rejects_other_words():
    assert true_false("TRUE") is True and true_false("0") is False
    with pytest.raises(argparse.ArgumentTypeError, match="expected true/false"):
        true_false("ture")
