"""Seeded n-way training tuples from a mined JSONL file, as fixed-shape token arrays.

Tuple of (query i, draw e), N = 1 + n_negatives docs, column 0 the positive::

    rng       = default_rng([seed, i, e])
    positive  = one of the query's positives, uniformly
    negatives = n_negatives of its top-`neg_depth` candidates, uniformly without replacement
                (fewer candidates -> the missing slots are marked invalid: valid[b, n] = False);
                with `teacher_skip` k > 0 the pool is those candidates re-ranked by the teacher's
                scores less the teacher's top k (ColBERTv2's denoised second round)

Draw ``e`` is the epoch: ``iter_epoch(e)`` streams all queries in ``default_rng([seed, e])``
order with draw e. As a training BatchSource, row r means (query r % Q, draw r // Q) over
``len = Q * draws`` rows, so one shuffled pass of the engine's sampler sees every query `draws`
times, each time with fresh negatives, and the engine's (seed, epoch, position) state alone
reproduces every batch.

Memory stays bounded: only one byte offset per line of the mined (and teacher) files is kept;
records are re-read from disk when a batch needs them.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxir.data.mine import parse_mined_line
from jaxir.errors import DataError, utf8_line
from jaxir.config.bounds import bounded, check_bounds
from jaxir.text import assemble, tokenize


@dataclasses.dataclass(frozen=True)
class TupleConfig:
    # Hard negatives per query (the tuple has 1 + n_negatives docs).
    n_negatives: int = bounded(7, ge=1)
    # Negatives are drawn from the first neg_depth mined candidates.
    neg_depth: int = bounded(30, ge=1)
    # Seeds positive/negative sampling (with the query row and the draw).
    seed: int = bounded(0, ge=0)
    # Training rows = queries x draws; draw d resamples every query's negatives.
    draws: int = bounded(1, ge=1)
    # > 0: re-rank the top neg_depth by the teacher's scores and skip its top teacher_skip
    # (likely unjudged positives) before drawing negatives; needs teacher scores.
    teacher_skip: int = bounded(0, ge=0)

    def __post_init__(self):
        check_bounds(self)
        if self.teacher_skip and self.teacher_skip + self.n_negatives > self.neg_depth:
            raise ValueError(f"teacher_skip ({self.teacher_skip}) + n_negatives ({self.n_negatives}) must be "
                             f"<= neg_depth ({self.neg_depth}): too few candidates left to draw from")


@dataclasses.dataclass(frozen=True)
class TrainingTuple:
    qid: str
    query: str
    doc_ids: list[str]          # [1 + n_negatives], column 0 the positive
    valid: np.ndarray           # [1 + n_negatives] bool
    teacher: np.ndarray | None  # [1 + n_negatives] float32 teacher scores, or None


def line_offsets(path: str | Path) -> np.ndarray:
    """Byte offsets [n_lines] of the non-blank lines of a text file (streamed)."""
    offsets, pos = [], 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                offsets.append(pos)
            pos += len(line)
    return np.asarray(offsets, np.int64)


def read_line_at(path: str | Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(int(offset))
        return f.readline()


class TeacherScores:
    """Random access to a scores JSONL ``{"qid", "scores": {doc_id: s}}`` (offsets by qid)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offsets: dict[str, int] = {}
        for lineno, off in enumerate(line_offsets(self.path), start=1):
            qid = self._parse(read_line_at(self.path, off), lineno)["qid"]
            self._offsets[qid] = int(off)

    def _parse(self, line: bytes, lineno) -> dict:
        text = utf8_line(line, self.path, lineno)
        try:
            rec = json.loads(text)
            ok = isinstance(rec["qid"], str) and isinstance(rec["scores"], dict)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DataError(f"{self.path}:{lineno}: expected {{\"qid\": str, \"scores\": {{doc: s}}}}")
        check_teacher_scores(rec["scores"].items(), self.path, lineno)
        return rec

    def scores(self, qid: str, doc_ids: Sequence[str]) -> np.ndarray:
        if qid not in self._offsets:
            raise DataError(f"{self.path}: no teacher scores for query {qid!r}")
        table = self._parse(read_line_at(self.path, self._offsets[qid]), f"qid {qid}")["scores"]
        missing = [d for d in doc_ids if d not in table]
        if missing:
            raise DataError(f"{self.path}: query {qid!r} has no teacher score for doc {missing[0]!r}")
        return np.asarray([table[d] for d in doc_ids], np.float32)


def check_teacher_scores(pairs, path, lineno) -> None:
    """DataError "<path>:<line>: teacher score of doc 'd3' is nan" unless every (doc, score) pair
    holds a finite number (JSON readers take NaN and Infinity; a KL target of nan trains nan)."""
    for doc, score in pairs:
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise DataError(f"{path}:{lineno}: teacher score of doc {doc!r} is not a number: {score!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{path}:{lineno}: teacher score of doc {doc!r} is {value}: scores must be finite")


def sample_docs(record: dict, rng: np.random.Generator, *, n_negatives: int,
                neg_depth: int, teacher_order=None, skip: int = 0) -> tuple[list[str], np.ndarray]:
    """(doc ids [1 + n], valid [1 + n]): a positive, then sampled negatives (padded by the positive).
    `teacher_order(pool) -> pool` re-ranks the top-neg_depth pool, whose first `skip` are left out."""
    pos = record["positives"][rng.integers(len(record["positives"]))]
    pool = [c[0] for c in record["candidates"][:neg_depth]]
    if skip:
        pool = teacher_order(pool)[skip:]
    take = min(n_negatives, len(pool))
    negs = [pool[j] for j in rng.choice(len(pool), size=take, replace=False)] if take else []
    ids = [pos, *negs] + [pos] * (n_negatives - take)
    valid = np.arange(1 + n_negatives) < 1 + take
    return ids, valid


class TupleSource:
    """BatchSource over mined queries: ``take(rows)`` -> ``encode``d arrays [B, 1 + n, ...].

    queries: qid -> text; doc_text: doc id -> text; encode(queries [B], docs [B][1 + n]) -> dict
    of arrays (e.g. ``PairEncoder``). The batch also holds ``valid`` [B, 1 + n] and, with a
    teacher file, ``teacher`` [B, 1 + n] float32; ``extra(tuples) -> dict`` adds arrays that need
    the tuples' ids.
    """

    def __init__(self, mined_path: str | Path, queries: Mapping[str, str],
                 doc_text: Callable[[str], str], encode: Callable, config: TupleConfig = TupleConfig(),
                 *, teacher_path: str | Path | None = None, extra: Callable | None = None):
        if config.n_negatives < 1 or config.neg_depth < 1 or config.draws < 1:
            raise ValueError(f"n_negatives, neg_depth and draws must be >= 1: {config}")
        self.path, self.config = Path(mined_path), config
        self.queries, self.doc_text, self.encode, self.extra = queries, doc_text, encode, extra
        self.offsets = line_offsets(self.path)
        if len(self.offsets) == 0:
            raise DataError(f"{self.path}: no mined records")
        self.teacher = TeacherScores(teacher_path) if teacher_path else None
        if config.teacher_skip and self.teacher is None:
            raise DataError(f"tuples.teacher_skip {config.teacher_skip} re-ranks by the teacher: give teacher "
                            "scores (--data.teacher FILE or --data.teacher_checkpoint CKPT)")

    @property
    def num_queries(self) -> int:
        return len(self.offsets)

    def __len__(self) -> int:
        return self.num_queries * self.config.draws

    def record(self, i: int) -> dict:
        rec = parse_mined_line(read_line_at(self.path, self.offsets[i]), self.path, f"record {i}")
        if rec["qid"] not in self.queries:
            raise DataError(f"{self.path}: record {i}: query {rec['qid']!r} has no text")
        return rec

    def tuple_at(self, query_row: int, draw: int) -> TrainingTuple:
        """The tuple of (query row, draw); a pure function of (seed, query_row, draw)."""
        rec = self.record(query_row)
        rng = np.random.default_rng([self.config.seed, query_row, draw])
        ids, valid = sample_docs(rec, rng, n_negatives=self.config.n_negatives,
                                 neg_depth=self.config.neg_depth, skip=self.config.teacher_skip,
                                 teacher_order=lambda pool: self._by_teacher(rec["qid"], pool))
        teacher = self.teacher.scores(rec["qid"], ids) if self.teacher else None
        return TrainingTuple(rec["qid"], self.queries[rec["qid"]], ids, valid, teacher)

    def _by_teacher(self, qid: str, pool: list[str]) -> list[str]:
        """`pool` in the teacher's order (best first; ties keep the first stage's order)."""
        scores = self.teacher.scores(qid, pool)
        return [pool[j] for j in np.argsort(-scores, kind="stable")]

    def iter_epoch(self, epoch: int) -> Iterator[TrainingTuple]:
        """Stream every query once, in the (seed, epoch) order, with draw = epoch."""
        order = np.random.default_rng([self.config.seed, epoch]).permutation(self.num_queries)
        for i in order:
            yield self.tuple_at(int(i), epoch)

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range [0, {len(self)}): {rows.min()}..{rows.max()}")
        tuples = [self.tuple_at(int(r % self.num_queries), int(r // self.num_queries)) for r in rows]
        docs = [[self.doc_text(d) for d in t.doc_ids] for t in tuples]
        out = dict(self.encode([t.query for t in tuples], docs))
        out["valid"] = np.stack([t.valid for t in tuples])
        if self.teacher is not None:
            out["teacher"] = np.stack([t.teacher for t in tuples])
        if self.extra is not None:
            out.update(self.extra(tuples))
        return out


class PairEncoder:
    """Cross-encoder rows ``[CLS] q [SEP] d [SEP]`` -> int32 arrays [B, N, max_length].

    token_type_ids are 0 on ``[CLS] q [SEP]`` and 1 on ``d [SEP]``; documents are truncated first.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, queries: Sequence[str], docs: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        b, n = len(queries), len(docs[0])
        q_tok = tokenize(self.tokenizer, queries, what="query")
        d_tok = tokenize(self.tokenizer, [d for row in docs for d in row], what="document")
        batch = assemble(self.tokenizer, [q for q in q_tok for _ in range(n)],
                         max_length=self.max_length, pairs=d_tok, fixed_length=True)
        return {k: v.reshape(b, n, self.max_length) for k, v in batch.arrays().items()}
