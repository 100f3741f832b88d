"""Exhaustive MaxSim in NumPy: the exact reference for PLAID, plus the segment helpers it uses.

Documents are contiguous token segments of a [T, D] token array (doc d = tokens
offsets[d] : offsets[d] + doclens[d]). Scores S(q, d) = sum_i max_j <Q_i, D_j> are computed in
blocks of documents so at most `block_tokens` tokens are decoded at a time; an empty document
scores 0. Ranking ties break by document index (smaller first), so results are deterministic.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ..errors import EmptyInputError

BLOCK_TOKENS = 1 << 16


def gather_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for every (s, l), without a Python loop -> [sum(lens)]."""
    lens = np.asarray(lens, np.int64)
    out_start = np.cumsum(lens) - lens
    return np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - out_start, lens)


def doc_blocks(lens: np.ndarray, max_tokens: int) -> Iterator[tuple[int, int]]:
    """Split documents into consecutive [lo, hi) ranges of about `max_tokens` tokens each."""
    ends = np.cumsum(lens, dtype=np.int64)
    lo = 0
    while lo < len(lens):
        base = ends[lo - 1] if lo else 0
        hi = int(np.searchsorted(ends, base + max_tokens, side="right"))
        hi = max(hi, lo + 1)  # a single long document still makes progress
        yield lo, hi
        lo = hi


def segment_maxsim(token_scores: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per-document sum over query tokens of the max over the document's tokens.

    Args:
      token_scores: [Lq, T] scores of T tokens, documents consecutive (C-contiguous: reduceat
        along the fast axis is ~30x quicker than over rows of a [T, Lq] array).
      lens: [n] token count per document, sum(lens) == T.
    Returns:
      [n] float32; 0 for an empty document.
    """
    lens = np.asarray(lens, np.int64)
    out = np.zeros(len(lens), np.float32)
    nonempty = lens > 0
    if nonempty.any():
        starts = (np.cumsum(lens) - lens)[nonempty]
        out[nonempty] = np.maximum.reduceat(token_scores, starts, axis=1).sum(axis=0)
    return out


def segment_max_rows(rows: np.ndarray, index: np.ndarray, counts: np.ndarray, *,
                     fill: float = 0.0) -> np.ndarray:
    """Per segment, the elementwise max of its rows: out[s] = max_{p in segment s} rows[index[p]].

    Args:
      rows: [R, L] (e.g. S_cq [K, Lq], one row per centroid; or token scores [T, Lq]).
      index: [P] row ids, segments consecutive (segment s = the next counts[s] entries).
      counts: [n] segment sizes; an empty segment gives a row of `fill`.
    Returns:
      [n, L] in rows' dtype.

    Segments are padded to the next power of two by repeating their last row (a repeat never
    changes a max), so each width is one gather of a [w, m, L] block reduced over its leading
    axis: a handful of vectorised calls instead of one reduction per segment and row, which is
    what `np.maximum.reduceat` costs on PLAID's thousands of short segments (4x slower there).
    """
    counts = np.asarray(counts, np.int64)
    out = np.full((len(counts), rows.shape[1]), fill, rows.dtype)
    starts = np.cumsum(counts) - counts
    widths = np.left_shift(1, np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64))
    widths[counts == 0] = 0
    for w in np.unique(widths[widths > 0]):
        seg = np.flatnonzero(widths == w)
        pick = index[starts[seg] + np.minimum(np.arange(w)[:, None], counts[seg] - 1)]  # [w, m]
        out[seg] = np.take(rows, pick, axis=0).max(axis=0)
    return out


def segment_row_maxsim(rows: np.ndarray, index: np.ndarray, counts: np.ndarray, *,
                       fill: float = 0.0, block: int = BLOCK_TOKENS) -> np.ndarray:
    """[n] float32: sum over columns of `segment_max_rows` (a MaxSim per segment), computed
    about `block` entries at a time; an empty segment scores fill * L."""
    counts = np.asarray(counts, np.int64)
    starts = np.cumsum(counts) - counts
    out = np.empty(len(counts), np.float32)
    for lo, hi in doc_blocks(counts, block):
        at = int(starts[lo])
        part = index[at:at + int(counts[lo:hi].sum())]
        out[lo:hi] = segment_max_rows(rows, part, counts[lo:hi], fill=fill).sum(axis=1)
    return out


def score_docs(pids: np.ndarray, offsets: np.ndarray, doclens: np.ndarray,
               token_scores: Callable[[np.ndarray], np.ndarray], *,
               block_tokens: int = BLOCK_TOKENS) -> np.ndarray:
    """Scores [len(pids)] of documents `pids`, where token_scores(token_ids) -> [Lq, t]."""
    pids = np.asarray(pids, np.int64)
    lens = doclens[pids].astype(np.int64)
    out = np.empty(len(pids), np.float32)
    for lo, hi in doc_blocks(lens, block_tokens):
        tokens = gather_ranges(offsets[pids[lo:hi]], lens[lo:hi])
        out[lo:hi] = segment_maxsim(token_scores(tokens), lens[lo:hi])
    return out


def top_k(scores: np.ndarray, pids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best min(k, n) by (-score, pid): (scores [k] float32, pids [k] int64)."""
    order = np.lexsort((pids, -scores))[:k]
    return scores[order].astype(np.float32), np.asarray(pids, np.int64)[order]


def prepare_query(q: np.ndarray, q_mask: np.ndarray | None, dim: int) -> np.ndarray:
    """[Lq, D] query (+ optional [Lq] mask) -> [Lq', D] float32 of the kept tokens."""
    q = np.asarray(q, np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"query must be [Lq, {dim}], got {q.shape}")
    if q_mask is not None:
        q = q[np.asarray(q_mask).astype(bool)]
    if len(q) == 0:
        raise EmptyInputError(f"query has no unmasked token (shape {q.shape})")
    return q


def maxsim_scores(q: np.ndarray, tokens: np.ndarray, doclens: np.ndarray, *,
                  q_mask: np.ndarray | None = None,
                  block_tokens: int = BLOCK_TOKENS) -> np.ndarray:
    """Exact MaxSim of one query [Lq, D] against all documents of raw token vectors [T, D]."""
    q = prepare_query(q, q_mask, tokens.shape[1])
    doclens = np.asarray(doclens, np.int64)
    offsets = np.cumsum(doclens) - doclens
    return score_docs(np.arange(len(doclens)), offsets, doclens,
                      lambda t: q @ np.asarray(tokens[t], np.float32).T, block_tokens=block_tokens)


def exhaustive_scores(index, q: np.ndarray, *, q_mask: np.ndarray | None = None,
                      block_tokens: int = BLOCK_TOKENS) -> np.ndarray:
    """Exact MaxSim [N] of a query against every document of a compressed index, decompressed."""
    q = prepare_query(q, q_mask, index.codec.dim)
    return score_docs(np.arange(index.num_docs), index.doc_offsets, index.doclens,
                      lambda t: q @ index.decompress_tokens(t).T, block_tokens=block_tokens)


def exhaustive_search(index, q: np.ndarray, k: int, *, q_mask: np.ndarray | None = None,
                      block_tokens: int = BLOCK_TOKENS) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores [k], doc indices [k]) by exact MaxSim over the whole decompressed index
    (its deleted documents left out)."""
    scores = exhaustive_scores(index, q, q_mask=q_mask, block_tokens=block_tokens)
    return live_top_k(index, scores, k)


def live_top_k(index, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` of per-row `scores` [N] over the rows `index` has not deleted."""
    rows = index.live(np.arange(len(scores)))
    return top_k(scores[rows], rows, k)
