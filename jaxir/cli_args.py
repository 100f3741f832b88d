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
    """A metric name `jaxir.eval.metrics.evaluate` knows, in ir_measures or trec_eval spelling
    (nDCG@10, ndcg_cut_10, P@10, R@1000, recall_1000, MAP, MRR@10, ...) -> its canonical name."""
    from jaxir.eval.metrics import parse_metric

    try:
        return parse_metric(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def output_file(text: str) -> str:
    """A file to be written: not a folder, and not below a file. Missing folders on its path are
    created by the command, after its outputs-over-inputs checks (`jaxir.cli_paths.refuse_clobber`)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    for folder in path.parents:
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise argparse.ArgumentTypeError(f"{str(folder)!r} on the path of {text!r} is not a folder")
            break
    return text
