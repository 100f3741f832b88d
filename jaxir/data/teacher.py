"""Teacher scores for mined training tuples (ColBERTv2's denoised supervision).

A trained cross-encoder scores, for every mined query, its positives and its first ``depth``
candidates. Output: JSONL, one line per query, the format ``TupleSource(teacher_path=...)``
reads::

    {"qid": "q1", "scores": {"d7": 4.1, "d3": -2.0, ...}}

Scores are the raw cross-encoder logits (no first-stage interpolation): the student's KL loss
takes a softmax over them. Written atomically (temp file + rename) like the mined file.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tqdm.auto import tqdm

from jaxir.data.mine import read_mined, write_mined
from jaxir.errors import DataError, NonFiniteError


def candidates_to_score(record: dict, depth: int) -> list[str]:
    """Positives first, then the first ``depth`` candidates (deduplicated, order kept)."""
    ids = [*record["positives"], *(c[0] for c in record["candidates"][:depth])]
    return list(dict.fromkeys(ids))


def _score_records(scorer, records: list[dict], queries: Mapping[str, str],
                   doc_text: Callable[[str], str], depth: int, chunk: int) -> Iterator[dict]:
    bar = tqdm(total=len(records), desc="teacher scores", unit="query")
    for start in range(0, len(records), chunk):
        part = records[start:start + chunk]
        ids = [candidates_to_score(r, depth) for r in part]
        missing = [r["qid"] for r in part if r["qid"] not in queries]
        if missing:
            raise DataError(f"mined query {missing[0]!r} has no text in the dataset")
        scores = scorer([queries[r["qid"]] for r in part], [[doc_text(d) for d in row] for row in ids])
        for rec, row, s in zip(part, ids, scores):
            bad = [(d, float(x)) for d, x in zip(row, s) if not math.isfinite(float(x))]
            if bad:  # a file of nan targets would train a nan student
                raise NonFiniteError(f"the teacher scored query {rec['qid']!r} doc {bad[0][0]!r} {bad[0][1]} "
                                     f"({len(bad)} of {len(row)} scores not finite): nothing written")
            yield {"qid": rec["qid"], "scores": {d: round(float(x), 5) for d, x in zip(row, s)}}
        bar.update(len(part))
    bar.close()


def score_mined(scorer, mined_path: str | Path, queries: Mapping[str, str],
                doc_text: Callable[[str], str], *, depth: int, out: str | Path,
                chunk: int = 32) -> dict:
    """Score every mined record with ``scorer(queries [Q], doc_lists [Q][n]) -> [Q][n] scores``.

    Returns a summary (queries, pairs scored, seconds, out).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    records = list(read_mined(mined_path))  # ids and scores only: small next to the texts
    if not records:
        raise DataError(f"{mined_path}: no mined records")
    t = time.perf_counter()
    n = write_mined(out, _score_records(scorer, records, queries, doc_text, depth, chunk))
    pairs = sum(len(candidates_to_score(r, depth)) for r in records)
    return {"queries": n, "pairs": pairs, "seconds": time.perf_counter() - t, "out": str(out)}


def teacher_split(*, checkpoint, mined, data, out, depth: int = 30, split: str = "train",
                  method: str = "cross-encoder") -> dict:
    """`jaxir teacher`: the raw scores (no interpolation) of the registered reranker `method` at
    `checkpoint` for the top `depth` candidates of each record of `mined`, written to `out`."""
    from jaxir.eval.beir import load_beir
    from jaxir.retrievers.registry import get_retriever

    dataset = load_beir(data, split=split)
    reranker = get_retriever(method, checkpoint=checkpoint).open_reranker()
    summary = score_mined(reranker.scores, mined, dataset.queries, dataset.text_of, depth=depth, out=out)
    print(f"teacher-scored {summary['pairs']} pairs of {summary['queries']} {dataset.split} queries "
          f"in {summary['seconds']:.1f}s -> {out}")
    return summary
