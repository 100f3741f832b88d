"""TREC run files in and out, qrels files in, and top-k arrays -> run dicts. NumPy and the standard library only.

A TREC run line is ``qid Q0 docid rank score tag``. ``write_trec`` orders each query's hits by
(-score, doc id) (Anserini/Pyserini's deterministic tie-break) with 1-based ranks, and writes
scores with ``repr`` so ``read_trec`` gives back the exact float64 values. Note that trec_eval
ignores the rank column and re-sorts by score (ties by doc id descending); ``jaxir.eval.metrics``
does the same, so a written-then-read run evaluates exactly like the in-memory one.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxir.errors import DataError, utf8_lines
from jaxir.fs import write_text

Run = dict[str, dict[str, float]]
_WHITESPACE = re.compile(r"\s")


def _ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """Hits sorted by score descending, ties by doc id ascending."""
    return sorted(((d, float(s)) for d, s in docs.items()), key=lambda hit: (-hit[1], hit[0]))


def _check_token(value: str, what: str, qid: str) -> None:
    if not value or _WHITESPACE.search(value):
        raise DataError(f"{what} {value!r} (query {qid!r}) is empty or contains whitespace; "
                        "it cannot be written to a TREC run file")


def write_trec(
    path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], *, tag: str = "jaxir",
    k: int | None = None,
) -> None:
    """Write ``run`` (queries in dict order) keeping at most ``k`` hits per query.

    Written whole or not at all, one writer at a time (`jaxir.fs.write_text`).
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1 or None, got {k}")
    _check_token(tag, "tag", "-")
    path = Path(path)
    lines = []
    for qid, docs in run.items():
        _check_token(str(qid), "query id", str(qid))
        for rank, (did, score) in enumerate(_ranked(docs)[:k], start=1):
            _check_token(str(did), "doc id", str(qid))
            if math.isnan(score):
                raise DataError(f"score of doc {did!r} for query {qid!r} is NaN")
            lines.append(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")
    # One writer at a time, through a temp name of its own: two runs into one file never
    # interleave, and a killed writer leaves the previous file (its temp is removed next time).
    write_text(path, "".join(lines))


def read_trec(path: str | os.PathLike) -> Run:
    """Parse a TREC run file into ``{qid: {docid: score}}`` (queries in file order)."""
    path = Path(path)
    run: Run = {}
    for lineno, line in utf8_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DataError(f"{path}:{lineno}: expected 6 fields "
                            f"(qid Q0 docid rank score tag), got {len(fields)}")
        qid, _, did, rank, score, _ = fields
        try:
            int(rank)
            value = float(score)
        except ValueError:
            raise DataError(f"{path}:{lineno}: bad rank {rank!r} or score {score!r}") from None
        if math.isnan(value):
            raise DataError(f"{path}:{lineno}: score is NaN")
        docs = run.setdefault(qid, {})
        if did in docs:
            raise DataError(f"{path}:{lineno}: doc {did!r} listed twice for query {qid!r}")
        docs[did] = value
    return run


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Relevance judgements ``{qid: {docid: grade}}`` from a TREC qrels file (``qid iter docid
    grade``, whitespace-separated) or a BEIR ``qrels/*.tsv`` (``query-id<TAB>corpus-id<TAB>score``,
    header optional). A row repeated with another grade, a malformed row or a file without rows
    is a DataError naming the file and line."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in utf8_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 4:
            qid, _, did, grade = fields
        elif len(fields) == 3:
            qid, did, grade = fields
        else:
            raise DataError(f"{path}:{lineno}: expected 4 fields (qid iter docid grade, TREC) or "
                            f"3 (query-id corpus-id score, BEIR), got {len(fields)}")
        try:
            value = int(grade)
        except ValueError:
            if lineno == 1 and len(fields) == 3:
                continue  # a BEIR header
            raise DataError(f"{path}:{lineno}: grade {grade!r} is not an integer") from None
        if (qid, did) in seen and qrels[qid][did] != value:
            raise DataError(f"{path}:{lineno}: query {qid!r}, document {did!r} graded {value} here but "
                            f"{qrels[qid][did]} on line {seen[qid, did]}")
        seen.setdefault((qid, did), lineno)
        qrels.setdefault(qid, {})[did] = value
    if not qrels:
        raise DataError(f"{path}: no qrels rows")
    return qrels


def run_from_topk(
    query_ids: Sequence[str], doc_ids: Sequence[str], indices: np.ndarray, scores: np.ndarray,
) -> Run:
    """Search output -> run. ``indices`` [Q, k] int rows into ``doc_ids`` (-1 = padding, skipped),
    ``scores`` [Q, k] float; row q belongs to ``query_ids[q]``."""
    indices, scores = np.asarray(indices), np.asarray(scores)
    if indices.ndim != 2 or indices.shape != scores.shape or indices.shape[0] != len(query_ids):
        raise ValueError(f"indices {indices.shape} and scores {scores.shape} must both be "
                         f"[Q, k] with Q = len(query_ids) = {len(query_ids)}")
    if len(set(query_ids)) != len(query_ids):
        raise ValueError("query_ids has duplicates")
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {indices.dtype}")
    bad = (indices < -1) | (indices >= len(doc_ids))
    if bad.any():
        q, j = np.argwhere(bad)[0]
        raise ValueError(f"indices[{q}, {j}] = {indices[q, j]} is outside [-1, {len(doc_ids)})")
    run: Run = {}
    for qid, row, row_scores in zip(query_ids, indices.tolist(), scores.tolist()):
        docs = run.setdefault(str(qid), {})
        for idx, score in zip(row, row_scores):
            if idx < 0:
                continue
            did = str(doc_ids[idx])
            if did in docs:
                raise DataError(f"doc {did!r} appears twice in the top-k of query {qid!r}")
            docs[did] = float(score)
    return run


def topk_overlap(run: Run, reference: Run, k: int = 10) -> float:
    """Mean over the reference's queries of |top-k(run) & top-k(reference)| / |top-k(reference)|.

    How much of an exact search's top k an approximate one recovers (PLAID vs exhaustive MaxSim);
    a query missing from ``run`` counts 0; queries with an empty reference list are skipped.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    fractions = []
    for qid, ref_docs in reference.items():
        ref = {d for d, _ in _ranked(ref_docs)[:k]}
        if ref:
            got = {d for d, _ in _ranked(run.get(qid, {}))[:k]}
            fractions.append(len(got & ref) / len(ref))
    if not fractions:
        raise DataError("the reference run has no hits to compare against")
    return float(np.mean(fractions))
