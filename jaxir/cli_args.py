"""argparse types that reject bad values at parse time, before any data is loaded or encoded.

Each returns the converted value or raises `argparse.ArgumentTypeError`, which argparse turns into
a one-line usage error with rc 2 naming the option.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (hits kept, candidates reranked, queries held out)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (seeds)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def metric(text: str) -> str:
    """A metric name `jaxir.eval.metrics.evaluate` knows (ndcg@10, recall@100, map, ...)."""
    from jaxir.eval.metrics import parse_metric

    try:
        return parse_metric(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def output_file(text: str) -> str:
    """A file to be written: its folder must exist now, not after the whole search."""
    folder = Path(text).expanduser().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(folder)!r} of {text!r} does not exist")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return text
