"""Batched, length-bucketed encoding loop shared by every method.

Texts are tokenised once, grouped by length (longest first), assembled into fixed
(batch_size, bucket) shapes and run through a jitted function, so a corpus compiles at most
once per length bucket. Results come back in the input order.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxir.text import DEFAULT_BUCKETS, Batch, assemble, assemble_windows, length_sorted_batches, tokenize


def iter_encoded(fn: Callable, params, tokenizer, texts: Sequence[str], *, max_length: int,
                 batch_size: int = 32, prefix: Sequence[int] = (), pad_id: int | None = None,
                 buckets: Sequence[int] = DEFAULT_BUCKETS, desc: str = "encode",
                 progress: bool = True, what: str = "text", windows: int = 1
                 ) -> Iterator[tuple[np.ndarray, Batch, object]]:
    """Yield (row indices, assembled batch, fn(params, batch arrays)) per length-sorted batch.

    `fn(params, input_ids, attention_mask, token_type_ids)` must be jit-compiled by the caller;
    padded rows past len(indices) are junk and must be dropped. windows > 1: long texts come as
    [B, W, L] windows (`assemble_windows`, no prefix), W bucketed by the batch's longest text.
    """
    token_lists = tokenize(tokenizer, texts, what=what)
    lengths = [len(t) for t in token_lists]
    groups = length_sorted_batches(lengths, batch_size)
    room = max_length - 2 - len(prefix)
    if windows > 1 and prefix:
        raise ValueError("windows do not take a prefix")
    n_tokens = sum(min(n, room * windows) + 2 * max(1, min(windows, -(-n // room))) for n in lengths)
    with tqdm(total=n_tokens, desc=desc, unit="tok", unit_scale=True, disable=not progress,
              leave=False) as bar:
        for idx in groups:
            rows = [token_lists[i] for i in idx]
            if windows > 1:
                batch = assemble_windows(tokenizer, rows, max_length=max_length, max_windows=windows,
                                         pad_rows_to=batch_size, buckets=buckets)
            else:
                batch = assemble(tokenizer, rows, max_length=max_length, prefix=prefix, pad_id=pad_id,
                                 pad_rows_to=batch_size, buckets=buckets)
            out = fn(params, batch.input_ids, batch.attention_mask, batch.token_type_ids)
            bar.update(int(batch.lengths.sum()))
            yield idx, batch, out


def encode_pooled(fn: Callable, params, tokenizer, texts: Sequence[str], **kwargs) -> np.ndarray:
    """Run `fn` (returning [B, D] vectors) over texts -> float32 [N, D] in input order."""
    result = None
    for idx, _, out in iter_encoded(fn, params, tokenizer, texts, **kwargs):
        out = np.asarray(out, np.float32)[: len(idx)]
        if result is None:
            result = np.zeros((len(texts), out.shape[1]), np.float32)
        result[idx] = out
    return result if result is not None else np.zeros((0, 0), np.float32)
