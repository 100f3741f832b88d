"""Dotted overrides of nested config dataclasses (`fit.steps`, `data.tuples.neg_depth`): applied
with every nested config rebuilt once (so its checks run), the final value of a field under a set
of overrides, and the option that sets a field. The floor under `jaxir.config.options` (options and
parsing) and `jaxir.config.warmup` (warm-ups fitted to the run).
"""
from __future__ import annotations

import dataclasses

from jaxir.config.bounds import Spelled, check_bounds


def option_string(name: str, flags: dict | None = None) -> str:
    """The option that sets dotted field `name`: a `flags` spelling, `--group.field` when
    nested, `--field-name` at the top level."""
    if flags and name in flags:
        flag = flags[name]
        return flag.option if isinstance(flag, Spelled) else flag
    return f"--{name}" if "." in name else f"--{name.replace('_', '-')}"


def get_field(cfg, dotted: str):
    """The value of dotted field `dotted` of `cfg`."""
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def final_value(cfg, overrides: dict, dotted: str):
    """The value `dotted` has once `overrides` are applied to `cfg`."""
    if overrides.get(dotted) is not None:
        return overrides[dotted]
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):  # a whole group given as one override
        head = ".".join(parts[:i])
        if overrides.get(head) is not None:
            return get_field(overrides[head], ".".join(parts[i:]))
    return get_field(cfg, dotted)


def apply_overrides(cfg, overrides: dict, derived: dict | None = None, *, skip_none: bool = True):
    """`cfg` with each given (not None) dotted override replacing its field, nested configs
    rebuilt once so their checks (__post_init__) run on the new values. Unknown names are an
    error. `derived` ({dotted: Derived}): those with a function are computed from the final
    values of the others in the same rebuild; overriding any derived field is an error."""
    overrides = {k: v for k, v in overrides.items() if v is not None or not skip_none}
    for name, d in (derived or {}).items():
        if name in overrides:
            raise ValueError(f"{name} is set by the recipe ({d.how}), not an option")
    for name, d in (derived or {}).items():
        if d.fn is not None:
            overrides[name] = d.fn(lambda dotted: final_value(cfg, overrides, dotted))
    out = _rebuild(cfg, overrides)
    check_bounds(out)
    return out


def _rebuild(cfg, overrides: dict, prefix: str = ""):
    groups: dict[str, dict] = {}
    for name, value in overrides.items():
        head, _, rest = name.partition(".")
        if head not in {f.name for f in dataclasses.fields(cfg)}:
            raise ValueError(f"{type(cfg).__name__} has no setting {prefix + name!r}")
        groups.setdefault(head, {})[rest] = value
    changes = {}
    for head, sub in groups.items():
        base = sub.pop("", getattr(cfg, head))
        if sub and not dataclasses.is_dataclass(base):
            raise ValueError(f"{prefix}{head} is not a config group: "
                             f"{sorted(f'{prefix}{head}.{k}' for k in sub)}")
        changes[head] = _rebuild(base, sub, f"{prefix}{head}.") if sub else base
    return dataclasses.replace(cfg, **changes) if changes else cfg
