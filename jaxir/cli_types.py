"""Argument types shared by `jaxir` and the training recipes (argparse only, no heavy imports)."""
from __future__ import annotations

import argparse
import dataclasses


def true_false(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no) -> bool; anything else is a usage error."""
    if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
    return text.lower() in ("1", "true", "yes")


def add_config_options(ap: argparse.ArgumentParser, config_cls, *, skip=()) -> None:
    """One --field-name option per dataclass field, typed from its annotation (int, float,
    true/false for bool, text otherwise); unset options stay None (see `with_overrides`)."""
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        # Annotations are strings under `from __future__ import annotations`, types otherwise.
        spelled = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        base = spelled.split("|")[0].strip()
        kind = {"int": int, "float": float, "bool": true_false}.get(base, str)
        ap.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=kind)


def with_overrides(config, options: dict):
    """`config` with every option that was given (not None) replacing its field."""
    return dataclasses.replace(config, **{k: v for k, v in options.items() if v is not None})
