"""Command-line options generated from (nested) config dataclasses; argparse only, no heavy imports.

Every field becomes one option typed from its annotation; a nested dataclass field becomes a
group of dotted options (`--model.doc_maxlen 180`, `--optim.learning_rate 3e-5`); top-level
fields are dashed (`--init-from`). The help of an option is the field's `metadata["help"]`, else
the comment lines right above the field (the flax-examples style: one comment above every config
field), so a setting is documented once. Unset options stay None and leave the config as it was
(`apply_overrides`).

Types: int, float, str, `X | None` (as X), and the value types of `jaxir.config.values`: bool
(true|false), tuple[float, ...] ("1,0.5"), tuple[str, ...] ("dense,bm25") and
tuple[tuple[str, float], ...] ("head=50,bert=0"; "" for none).

A recipe parses its whole config in one call::

    steps = Derived("fit.steps // optim.accumulate",
                    lambda get: get("fit.steps") // get("optim.accumulate"))
    cfg, args = parse_config(ap, Recipe, RECIPE, argv, modes=MODES, flags={"data.dataset": "--data"},
                             derived={"optim.total_steps": steps})

`modes` are dicts of dotted overrides of the one default (`--mode NAME`, the first is the
default); `flags` gives a leaf another option spelling (a `Spelled` one may count from
another origin); `derived` fields are set by the recipe,
not by options (--help lists them with how they are set).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from jaxir.config.bounds import Spelled, in_bounds, offset_type
from jaxir.config.overrides import apply_overrides, get_field, option_string
from jaxir.config.values import float_tuple, name_floats, str_tuple, true_false
from jaxir.errors import OptionError


@dataclasses.dataclass(frozen=True)
class Derived:
    """A field the program sets, so it gets no option. `how` is shown in --help; with `fn`,
    `apply_overrides` computes it as fn(get) from the final values of the other fields
    (get("fit.steps")); without, the program sets it at run time."""

    how: str
    fn: Callable[[Callable[[str], Any]], Any] | None = None


@functools.lru_cache(maxsize=None)
def field_comments(cls) -> dict[str, str]:
    """{field: the comment lines above it in the class body}, read from the source.

    A comment block documents the field right below it (blank lines in between are fine) and
    the fields that follow that one directly (`b1`, `b2`, `eps` under one "# Adam moments.").
    """
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):  # defined somewhere without source (e.g. a REPL)
        return {}
    start = next((i + 1 for i, line in enumerate(lines) if line.lstrip().startswith("class ")), 1)
    body = [line for line in lines[start:] if line.strip()]
    indent = len(body[0]) - len(body[0].lstrip()) if body else 0
    out, pending, current = {}, [], None
    for line in lines[start:]:
        text = line.strip()
        if not text:
            current = None  # a blank line ends a block's run of fields, not a pending comment
            continue
        if len(line) - len(line.lstrip()) > indent:
            continue  # continuation of a multi-line statement
        if text.startswith("#"):
            pending.append(text.lstrip("#").strip())
            continue
        m = re.match(r"([A-Za-z_]\w*)\s*:", text)
        if pending:
            current = " ".join(pending) if m else None
            pending = []
        if m and current:
            out[m.group(1)] = current
        elif not m:
            current = None
    return out


def field_help(cls, field: dataclasses.Field) -> str:
    """The field's help: its metadata, else the comment above it in the (nearest) class declaring it."""
    if field.metadata.get("help"):
        return field.metadata["help"]
    for base in cls.__mro__:
        if field.name in base.__dict__.get("__annotations__", {}):
            return field_comments(base).get(field.name, "")
    return ""


def _hints(cls) -> dict:
    # Annotations are strings under `from __future__ import annotations`: resolve them.
    return typing.get_type_hints(cls)


def _parser_type(hint):
    """(argparse type, metavar) for a field annotation; None for fields the CLI cannot take."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:  # X | None
        hint = args[0]
    if hint is bool:
        return true_false, "true|false"
    if hint in (int, float, str):
        return hint, hint.__name__.upper()
    if typing.get_origin(hint) is tuple:
        inner = typing.get_args(hint)
        if inner and set(inner) <= {float, int, Ellipsis}:
            return float_tuple, "X,Y,.."
        if inner == (str, Ellipsis):
            return str_tuple, "A,B,.."
        if len(inner) == 2 and inner[1] is Ellipsis and typing.get_args(inner[0]) == (str, float):
            return name_floats, "NAME=X,.."
    return None


def field_option(owner, f: dataclasses.Field, *, bare_bool: bool = False) -> dict | None:
    """argparse keywords (type, metavar) of one config field, from its annotation and its declared
    range or choices (`jaxir.config.bounds`); None for a field the CLI cannot take. The one place a
    field becomes an option: recipe/method configs and retriever options alike. `bare_bool`: a
    bool option given alone means true (`--uncompressed`)."""
    typed = _parser_type(_hints(owner)[f.name])
    if typed is None:
        return None
    kind, metavar = typed
    if kind is true_false and bare_bool:
        return {"type": true_false, "metavar": metavar, "nargs": "?", "const": True}
    choices = f.metadata.get("choices")
    if choices:
        metavar = "{%s}" % ",".join(map(str, choices))
    return {"type": in_bounds(kind, f.metadata.get("bounds", {}), finite=f.metadata.get("finite", True),
                              choices=choices), "metavar": metavar}


def nested_fields(cls, prefix: str = ""):
    """Yield (dotted name, owning class, field) for every leaf field, depth first."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from nested_fields(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", cls, f


def leaf_names(cls) -> list[str]:
    """Dotted names of every leaf field of a (nested) config class."""
    return [name for name, _, _ in nested_fields(cls)]


def show(value) -> str:
    """A value as it is typed on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return ",".join(f"{k}={v:g}" for k, v in value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "''"
    return str(value)




def add_config_options(ap: argparse.ArgumentParser, cls, *, skip=(), prefix: str = "",
                       defaults=None, modes: dict | None = None, flags: dict | None = None) -> None:
    """One option per leaf field of `cls` (dotted for nested configs), grouped by top-level
    config. `defaults` (an instance) shows each field's default in the help, and `modes`
    ({name: dotted overrides}) the modes that change it; `flags` renames some options."""
    groups: dict[str, Any] = {}
    for name, owner, f in nested_fields(cls, prefix):
        if name in skip:
            continue
        option = field_option(owner, f)
        if option is None:
            continue
        rel = name[len(prefix):]
        shown = ""
        if defaults is not None:
            shown = [show(get_field(defaults, rel))]
            alias = _aliases(modes or {})
            shown += [f"{m}: {show(o[rel])}" for m, o in (modes or {}).items()
                      if rel in o and m not in alias]
            shown = f" [{'; '.join(shown)}]"
        head = rel.split(".")[0] if "." in rel else ""
        if head not in groups:  # one help section per config group; top-level fields in ap's
            groups[head] = ap.add_argument_group(
                f"{head} ({type(get_field(defaults, head)).__name__})" if defaults is not None else head
            ) if head else ap
        text = (field_help(owner, f) + shown).replace("%", "%%")
        bounds, finite = f.metadata.get("bounds", {}), f.metadata.get("finite", True)
        spelled = (flags or {}).get(name)
        if isinstance(spelled, Spelled):  # bounds checked in the option's own counting
            kind = _parser_type(_hints(owner)[f.name])[0]
            option["type"] = offset_type(in_bounds(kind, {k: v + spelled.offset for k, v in bounds.items()},
                                                   finite=finite), spelled.offset)
            default = show(get_field(defaults, rel) + spelled.offset) if defaults is not None else "?"
            text = f"{spelled.help} (sets {name} to this minus {spelled.offset}) [{default}]"
        groups[head].add_argument(option_string(name, flags), dest=name, default=None, help=text, **option)


def _aliases(modes: dict) -> dict:
    """{mode: the earlier mode it is another spelling of} (the same dict object)."""
    out = {}
    for i, (m, o) in enumerate(modes.items()):
        out.update({m: a for a, p in list(modes.items())[:i] if p is o and a not in out})
    return out


def describe_modes(modes: dict) -> str:
    """One line per mode: its dotted overrides (or which mode it is another name of)."""
    alias = _aliases(modes)
    return "\n".join(f"  {m}: " + (f"= {alias[m]}" if m in alias else
                                    " ".join(f"{k}={show(v)}" for k, v in o.items()) or "(the defaults)")
                     for m, o in modes.items())


def parse_config(ap: argparse.ArgumentParser, cls, default, argv=None, *, modes: dict | None = None,
                 flags: dict | None = None, derived: dict | None = None, warmups: dict | None = None,
                 check: Callable | None = None):
    """Parse argv into (config, other args). With `modes`, `--mode NAME` applies that mode's
    dotted overrides to `default` (the first mode when not given); given options override the
    mode. `flags`: {dotted: option spelling}; `derived`: {dotted: Derived}, listed in --help;
    `warmups`: {dotted warm-up: the field counting its run's updates} (`jaxir.config.warmup`).
    `check(config)`: what no single field can say (ValueError: a usage error, like a field's).
    Every leaf field must get an option or be derived."""
    derived = derived or {}
    ap.allow_abbrev = False  # with this many dotted options a prefix is a typo, not a shorthand
    if ap.formatter_class is argparse.HelpFormatter:  # keep the mode / derived tables' lines
        ap.formatter_class = argparse.RawDescriptionHelpFormatter
    missing = [n for n, o, f in nested_fields(cls)
               if n not in derived and _parser_type(_hints(o)[f.name]) is None]
    if missing:
        raise TypeError(f"{cls.__name__}: no command-line type for {missing}; mark them derived")
    shown = default
    if modes:
        first = next(iter(modes))
        ap.add_argument("--mode", choices=list(modes), default=first,
                        help=f"a named set of overrides of the default config [{first}]")
        shown = apply_overrides(default, modes[first], derived, skip_none=False)
    add_config_options(ap, cls, skip=tuple(derived), defaults=shown, modes=modes, flags=flags)
    notes = []
    if modes:
        notes.append("modes (dotted overrides of the defaults):\n" + describe_modes(modes))
    if derived:
        notes.append("set by the recipe, not options:\n" + "\n".join(
            f"  {name} = {d.how}" for name, d in derived.items()))
    if warmups:
        notes.append("warm-ups end within the run: one not given that is longer is shortened to a tenth "
                     "of the run (a note says so); a given one is an error:\n" + "\n".join(
                         f"  {option_string(name, flags)} <= {run}" for name, run in warmups.items()))
    if notes:
        ap.epilog = "\n\n".join(filter(None, [ap.epilog, *notes]))
    args = vars(ap.parse_args(argv))
    names = set(leaf_names(cls))
    given = {k: v for k in list(args) if k in names for v in [args.pop(k)] if v is not None}
    try:
        cfg = mode_config(default, modes, args.get("mode"), given, derived=derived, warmups=warmups, flags=flags)
    except OptionError:
        raise  # a warm-up's one line naming its option: the CLI prints it as it prints any JaxirError
    except (TypeError, ValueError) as e:
        ap.error(str(e))
    try:
        if check is not None:  # across fields: a usage error, like a single field's
            check(cfg)
    except ValueError as e:
        ap.error(str(e))
    return cfg, argparse.Namespace(**args)


def mode_config(default, modes: dict | None, mode: str | None, given: dict, *, derived: dict | None = None,
                warmups: dict | None = None, flags: dict | None = None):
    """`default` with mode `mode`'s dotted overrides, then the `given` ones, derived fields set and
    warm-ups fitted to the run (`jaxir.config.warmup`; `given` ones are kept or refused): what
    the command line builds, and each recipe's `config(mode, overrides)`."""
    merged = {**(modes[mode] if modes else {}), **given}
    if warmups:  # before the optimizer's own check (warmup_steps <= total_steps)
        from jaxir.config.warmup import follow_run

        merged = follow_run(default, merged, derived or {}, warmups, given=set(given), flags=flags)
    return apply_overrides(default, merged, derived, skip_none=False)


def parse_recipe(doc: str, cls, default, argv=None, *, modes: dict, flags: dict | None = None,
                 derived: dict | None = None, warmups: dict | None = None, out_help: str = "output folder",
                 prog: str | None = None, check: Callable | None = None) -> tuple[Any, str]:
    """A recipe's command line: (the mode's config with every given option applied, --out).
    `prog`: the command shown in usage and --help (`jaxir train --recipe NAME`)."""
    # A one-line usage: a recipe has ~50 options, and argparse prints the usage above every error.
    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="%(prog)s [--mode MODE] [--GROUP.FIELD VALUE ...] --out DIR (options: --help)")
    ap.add_argument("--out", required=True, help=out_help)
    cfg, args = parse_config(ap, cls, default, argv, modes=modes, flags=flags, derived=derived, warmups=warmups,
                             check=check)
    return cfg, args.out
