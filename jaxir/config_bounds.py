"""Ranges of config fields, declared once on the field (`bounded`): the generated command-line
option rejects a value outside its range at parse time (`jaxir.config_cli`), and `check_bounds`
rejects it in a config built any other way. Standard library only."""
from __future__ import annotations

import argparse
import dataclasses
import numbers


def bounded(default, *, ge=None, gt=None, le=None, lt=None):
    """A config field with a range, declared once: its option rejects a value outside it at
    parse time ("argument --fit.steps: must be >= 1, got -2"), and `check_bounds` (run on every
    config `apply_overrides` builds, and by the configs' own __post_init__) rejects it too."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def bound_error(bounds: dict, value) -> str | None:
    """Why `value` is outside `bounds` (None: inside, or no value)."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if "ge" in bounds and not value >= bounds["ge"]:
        return f"must be >= {bounds['ge']}, got {value}"
    if "gt" in bounds and not value > bounds["gt"]:
        return f"must be > {bounds['gt']}, got {value}"
    if "le" in bounds and not value <= bounds["le"]:
        return f"must be <= {bounds['le']}, got {value}"
    if "lt" in bounds and not value < bounds["lt"]:
        return f"must be < {bounds['lt']}, got {value}"
    return None


def check_bounds(cfg, prefix: str = "") -> None:
    """ValueError naming the first field of the (nested) config outside its `bounded` range."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_bounds(value, f"{prefix}{f.name}.")
        elif (why := bound_error(f.metadata.get("bounds", {}), value)) is not None:
            raise ValueError(f"{prefix}{f.name} {why}")


def in_bounds(kind, bounds: dict):
    """The argparse type `kind`, also checking `bounds`."""
    if not bounds:
        return kind

    def parse(text):
        value = kind(text)
        why = bound_error(bounds, value)
        if why is not None:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


@dataclasses.dataclass(frozen=True)
class Spelled:
    """A `flags` spelling whose value maps onto the field's: ``Spelled("--nway", 1)`` sets
    data.tuples.n_negatives to N - 1 from ``--nway N`` (the papers count the positive). The field
    stays the one setting; `offset` is what the option counts beyond it, `help` what it means."""

    option: str
    offset: int
    help: str


def offset_type(kind, offset: int):
    """The argparse type of a `Spelled` option: `kind` (checks included), less `offset`."""
    def parse(text):
        return kind(text) - offset

    parse.__name__ = kind.__name__
    return parse
