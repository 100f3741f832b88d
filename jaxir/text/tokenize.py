"""Tokenizer loading (local HF folder) and batch assembly into fixed length buckets.

Text is tokenised once without special tokens, then assembled as
`[CLS] prefix tokens [SEP]` (or `[CLS] a [SEP] b [SEP]` for pairs) and padded up to the next
length bucket, so XLA compiles once per bucket instead of once per batch.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxir.errors import EmptyInputError

DEFAULT_BUCKETS = (32, 64, 128, 180, 256, 512)


@lru_cache(maxsize=8)
def _load(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.model_max_length = 10**9  # we truncate ourselves; silences "sequence too long" warnings
    return tok


def load_tokenizer(model_dir: str | Path | None = None):
    """A fast WordPiece tokenizer from a local HF folder (default: embedded MiniLM)."""
    from jaxir.text.model_dir import resolve_model_dir

    return _load(str(resolve_model_dir(model_dir)))


def single_text_encoder(tokenizer):
    """``text -> WordPiece ids`` (no special tokens) for one string at a time, e.g. a search query.

    Why: for one short string the transformers wrapper costs several times the tokenisation
    itself, so fast tokenizers go straight to a copy of their Rust backend (same ids: the copy
    drops the truncation/padding a tokenizer.json may carry, as the wrapper does per call), and
    uncased BERT WordPiece backends first try the exact pure-Python path of `jaxir.text.wordpiece`
    (printable ASCII; about 3x cheaper than the Rust call for a query). Others use the call.
    """
    from jaxir.text.wordpiece import fast_encoder

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    plain = type(backend).from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    return fast_encoder(plain) or (lambda text: plain.encode(text, add_special_tokens=False).ids)


def bucket_length(n: int, max_length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """Smallest bucket >= n, capped at max_length (max_length itself is always a bucket)."""
    for b in sorted(set(buckets) | {max_length}):
        if n <= b <= max_length:
            return b
    return max_length


@dataclasses.dataclass
class Batch:
    """Token arrays [B, L] ([B, W, L] for windows, int32) plus per-row truncation flags and lengths."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    truncated: np.ndarray
    lengths: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids}


def tokenize(tokenizer, texts: Sequence[str], *, what: str = "text") -> list[list[int]]:
    """WordPiece ids without special tokens; empty or whitespace-only text is an error."""
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise EmptyInputError(f"{what} at position {i} is empty: {t!r}")
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def assemble(tokenizer, token_lists: Sequence[Sequence[int]], *, max_length: int,
             prefix: Sequence[int] = (), pairs: Sequence[Sequence[int]] | None = None,
             pad_id: int | None = None, pad_rows_to: int | None = None,
             buckets: Sequence[int] = DEFAULT_BUCKETS, fixed_length: bool = False) -> Batch:
    """Build `[CLS] prefix a [SEP] (b [SEP])` rows padded to a bucket (or to max_length if fixed).

    Over-long inputs are truncated (the second segment first for pairs) and flagged.
    `pad_id` defaults to the tokenizer's [PAD]; ColBERT queries pass [MASK].
    `pad_rows_to` appends all-padding rows so the batch dimension repeats too.
    """
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    pad_id = tokenizer.pad_token_id if pad_id is None else pad_id
    rows, types, truncated = [], [], []
    for i, a in enumerate(token_lists):
        room = max_length - 2 - len(prefix) - (1 if pairs is not None else 0)
        if room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for tokens")
        a = list(a)
        b = list(pairs[i]) if pairs is not None else []
        cut = len(a) + len(b) > room
        if pairs is not None:
            # The second segment gives way first; the first keeps at least half the room.
            a = a[: min(len(a), max(room - len(b), room // 2))]
            b = b[: room - len(a)]
        else:
            a = a[:room]
        row = [cls, *prefix, *a, sep] + ([*b, sep] if pairs is not None else [])
        rows.append(row)
        types.append([0] * (len(prefix) + len(a) + 2) + [1] * (len(row) - len(prefix) - len(a) - 2))
        truncated.append(cut)
    lengths = np.array([len(r) for r in rows], np.int32)
    width = max_length if fixed_length else bucket_length(int(lengths.max(initial=1)), max_length, buckets)
    n_rows = max(len(rows), pad_rows_to or 0)
    ids = np.full((n_rows, width), pad_id, np.int32)
    mask = np.zeros((n_rows, width), np.int32)
    tt = np.zeros((n_rows, width), np.int32)
    for i, (r, t) in enumerate(zip(rows, types)):
        ids[i, : len(r)], mask[i, : len(r)], tt[i, : len(r)] = r, 1, t
    pad = n_rows - len(rows)
    return Batch(ids, mask, tt, np.array(truncated + [False] * pad),
                 np.concatenate([lengths, np.zeros(pad, np.int32)]))


def assemble_windows(tokenizer, token_lists: Sequence[Sequence[int]], *, max_length: int,
                     max_windows: int, pad_rows_to: int | None = None,
                     buckets: Sequence[int] = DEFAULT_BUCKETS) -> Batch:
    """Long texts as consecutive windows: arrays [B, W, L], each window `[CLS] piece [SEP]`.

    A text of n tokens takes ceil(n / (max_length - 2)) windows, at most max_windows (the rest
    is truncated and flagged). W is the most windows any row needs; a row's unused windows are
    all padding (attention mask 0). With W == 1 the length is bucketed as in `assemble`.
    `lengths` counts every real position of a row, specials included.
    """
    room = max_length - 2
    if room < 1 or max_windows < 1:
        raise ValueError(f"max_length={max_length} / max_windows={max_windows} leave no room")
    pieces = [[list(t[i: i + room]) for i in range(0, max(len(t), 1), room)][:max_windows]
              for t in token_lists]
    n_win = max((len(p) for p in pieces), default=1)
    flat = [p[j] if j < len(p) else [] for p in pieces for j in range(n_win)]
    batch = assemble(tokenizer, flat, max_length=max_length, buckets=buckets,
                     fixed_length=n_win > 1)
    used = np.array([j < len(p) for p in pieces for j in range(n_win)])
    batch.input_ids[~used] = tokenizer.pad_token_id
    batch.attention_mask[~used] = 0
    rows, width = len(pieces), batch.input_ids.shape[1]
    n_rows = max(rows, pad_rows_to or 0)

    def grid(x, fill=0):  # [rows * W, L] -> [n_rows, W, L], extra rows all `fill`
        out = np.full((n_rows, n_win, width), fill, np.int32)
        out[:rows] = x.reshape(rows, n_win, width)
        return out

    mask = grid(batch.attention_mask)
    truncated = np.zeros(n_rows, bool)
    truncated[:rows] = [len(t) > room * max_windows for t in token_lists]
    return Batch(grid(batch.input_ids, tokenizer.pad_token_id), mask, grid(batch.token_type_ids),
                 truncated, mask.sum(axis=(1, 2)).astype(np.int32))


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches grouped by length (longest first) so padding waste is small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
