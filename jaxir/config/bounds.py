"""Ranges of config fields, declared once on the field (`bounded`): the generated command-line
option rejects a value outside its range at parse time (`jaxir.config.options`), and `check_bounds`
rejects it in a config built any other way. Standard library only.

One rule covers every field, bounded or not: a number in a config (a float field, a tuple of
them, the numbers of (name, number) pairs) must be finite, nan and +-inf are refused at parse
time and by `check_bounds`, unless the field says otherwise (`bounded(..., finite=False)`). A range
bounds each number of a tuple too; `one_of` declares the values a field may take."""
from __future__ import annotations

import argparse
import dataclasses
import math
import numbers


def bounded(default, *, ge=None, gt=None, le=None, lt=None, finite: bool = True):
    """A config field with a range, declared once: its option rejects a value outside it at
    parse time ("argument --fit.steps: must be >= 1, got -2"), and `check_bounds` (run on every
    config `apply_overrides` builds, and by the configs' own __post_init__) rejects it too.
    `finite=False`: the field takes nan / inf (every other field refuses them)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    metadata = {"bounds": bounds} if finite else {"bounds": bounds, "finite": False}
    return dataclasses.field(default=default, metadata=metadata)


def one_of(default, choices):
    """A config field taking one of `choices` (names or numbers), declared once: its option
    refuses any other value at parse time ("argument --fit.compute_dtype: must be one of
    float32, bfloat16, got 'foo'"), and `check_bounds` refuses it in any other config."""
    return dataclasses.field(default=default, metadata={"bounds": {}, "choices": tuple(choices)})


def choice_error(choices, value) -> str | None:
    """Why `value` is not one of `choices` (None: it is, no value, or no choices declared)."""
    if choices is None or value is None or value in choices:
        return None
    return f"must be one of {', '.join(map(str, choices))}, got {value!r}"


def finite_error(value) -> str | None:
    """Why `value` (a number, or a tuple/list holding numbers, e.g. (("head", 50.0),)) is not
    finite (None: every number in it is finite; non-numbers are not this rule's business)."""
    bad = _first_nonfinite(value)
    if bad is None:
        return None
    if isinstance(value, (tuple, list)):
        return f"must hold finite numbers only, got {bad} in {value!r}"
    return f"must be a finite number, got {bad}"


def _leaves(value):
    """The items of a (nested) tuple or list; `value` itself when it is neither."""
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _first_nonfinite(value):
    return next((v for v in _leaves(value) if isinstance(v, numbers.Real) and not isinstance(v, bool)
                 and not math.isfinite(v)), None)


def field_error(metadata, value) -> str | None:
    """Why a field (its `metadata`) cannot hold `value`: not finite (unless the field allows
    it), not one of its `one_of` choices, or outside its `bounded` range. The one check of both
    the command line and configs."""
    if metadata.get("finite", True) and (why := finite_error(value)) is not None:
        return why
    if (why := choice_error(metadata.get("choices"), value)) is not None:
        return why
    return bound_error(metadata.get("bounds", {}), value)


def bound_error(bounds: dict, value) -> str | None:
    """Why `value` (a number, or a tuple holding numbers: each is checked) is outside `bounds`
    (None: inside, or no value)."""
    if isinstance(value, (tuple, list)):
        why = next(filter(None, (bound_error(bounds, v) for v in _leaves(value))), None)
        return why and f"{why} in {value!r}"
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
    """ValueError naming the first field of the (nested) config outside its `bounded` range, not
    one of its `one_of` choices, or holding a non-finite number where the field does not allow one."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_bounds(value, f"{prefix}{f.name}.")
        elif (why := field_error(f.metadata, value)) is not None:
            raise ValueError(f"{prefix}{f.name} {why}")


def in_bounds(kind, bounds: dict, *, finite: bool = True, choices=None):
    """The argparse type `kind`, also checking `bounds`, `choices` and (unless `finite` is False)
    that the numbers it gives are finite ("argument --optim.learning_rate: must be a finite
    number, got inf")."""
    if not bounds and not finite and choices is None:
        return kind
    metadata = {"bounds": bounds, "finite": finite, "choices": choices}

    def parse(text):
        value = kind(text)
        why = field_error(metadata, value)
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
