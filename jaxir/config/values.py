"""Option value types of the generated command line: text -> value, or one usage error line.

bool (true|false, 1|0, yes|no), tuple[float, ...] ("1,0.5"), tuple[str, ...] ("dense,bm25") and
tuple[tuple[str, float], ...] ("head=50,bert=0"; "" for none). argparse only.
"""
from __future__ import annotations

import argparse

BOOL_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def true_false(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no) -> bool; anything else is a usage error."""
    if text.lower() not in BOOL_WORDS:
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
    return BOOL_WORDS[text.lower()]


def float_tuple(text: str) -> tuple[float, ...]:
    """'1,0.5' -> (1.0, 0.5); a usage error for anything else."""
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def str_tuple(text: str) -> tuple[str, ...]:
    """'dense,bm25' -> ("dense", "bm25"); empty items are a usage error."""
    items = tuple(x.strip() for x in text.split(","))
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return items


def name_floats(text: str) -> tuple[tuple[str, float], ...]:
    """'head=50,bert=0' -> (("head", 50.0), ("bert", 0.0)); '' -> (); a usage error otherwise."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            if not (eq and name.strip()):
                raise ValueError
            out.append((name.strip(), float(value)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected name=number[,name=number..], got {text!r}") from None
    return tuple(out)
