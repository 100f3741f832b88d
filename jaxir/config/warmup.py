"""Warm-ups that follow the run, so that `--fit.steps N` alone always makes a run.

A recipe names its warm-ups and the field that counts the updates each must end within::

    WARMUPS = {"optim.warmup_steps": "optim.total_steps",
               "model.flops_warmup_steps": "optim.total_steps"}

A warm-up the user did not give (the recipe's default or its mode's) that is longer than the
run is shortened to a tenth of the run's updates (rounded down, so 0 below 10 updates), with one
note on stderr naming the option and the value used. One the user gave is kept as given: longer
than the run, it is a one-line OptionError naming its option (its schedule would never finish).
"""
from __future__ import annotations

import sys

from jaxir.config.overrides import apply_overrides, final_value, option_string
from jaxir.errors import OptionError

# A shortened warm-up spans this fraction of the run (the sparse recipe's FLOPS warm-up and the
# cross-encoder's learning-rate warm-up are a tenth of their runs too).
FRACTION = 0.1


def _updates(n: int) -> str:
    return f"{n} update" if n == 1 else f"{n} updates"


def _too_long(name: str, value: int, run: int, run_field: str, derived: dict | None, flags: dict | None) -> str:
    how = f" = {derived[run_field].how}" if run_field in (derived or {}) else ""
    return (f"{option_string(name, flags)} {value} is longer than the run's {_updates(run)} ({run_field}{how}): "
            f"give at most {run}")


def check_warmups(cfg, warmups: dict, derived: dict | None = None, flags: dict | None = None) -> None:
    """OptionError naming the first warm-up of `cfg` (a built config) longer than its run."""
    for name, run_field in warmups.items():
        value, run = final_value(cfg, {}, name), final_value(cfg, {}, run_field)
        if value > run:
            raise OptionError(_too_long(name, value, run, run_field, derived, flags))


def follow_run(default, overrides: dict, derived: dict, warmups: dict, *, given, flags: dict | None = None) -> dict:
    """`overrides` (dotted, of `default`) with every warm-up longer than its run shortened to
    FRACTION of it and said once on stderr; a warm-up named in `given` (set on the command line)
    and longer than its run is an OptionError instead."""
    # The run's length as the recipe derives it (warm-ups at 0 so the optimizer's check passes).
    probe = apply_overrides(default, {**overrides, **dict.fromkeys(warmups, 0)}, derived, skip_none=False)
    out, notes = dict(overrides), []
    for name, run_field in warmups.items():
        value, run = final_value(default, overrides, name), final_value(probe, {}, run_field)
        if value <= run:
            continue
        if name in given:
            raise OptionError(_too_long(name, value, run, run_field, derived, flags))
        out[name] = int(run * FRACTION)
        notes.append(f"{option_string(name, flags)} {out[name]} (configured {value}, the run has {_updates(run)})")
    if notes:
        print(f"note: warm-up longer than the run, shortened to a tenth of it: {'; '.join(notes)}", file=sys.stderr)
    return out
