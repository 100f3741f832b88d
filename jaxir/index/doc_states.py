"""Stored per-token document states (MICE's layer-l_f states): a ragged store on the index format.

Arrays of the `jaxir.index.store` folder (manifest method "mice-states")::

    doc_ids   [N] unicode
    offsets   [N + 1] int64       document i owns rows offsets[i]:offsets[i+1]
    states    [T, H] float16|32   one row per kept token (T = total kept tokens)
    kv        [T, n_layers, 2, H] optional: each interaction layer's keys and values of those rows

meta records what the states depend on: fusion_layer, doc_maxlen, query_maxlen, configuration,
prune_tokens, the interaction layers the kv cover, state dtype. Pruning keeps a document's
`prune_tokens` highest-IDF tokens (IDF over this corpus; the final [SEP] always kept, ties to
the earlier token) in their original order: a query-independent choice made at index time.

NumPy only: the reranker gathers candidates into padded [n, width, H] arrays here and hands
them to the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, IndexFormatError
from .store import load_index, save_index

KIND = "mice-states"
STATE_DTYPES = ("float16", "float32")


def prune_positions(token_ids: np.ndarray, idf: np.ndarray, keep: int, head: int = 0) -> np.ndarray:
    """Positions (sorted) of the `keep` highest-IDF tokens of one document; its last token (the
    [SEP]) and its first `head` tokens (MICE's sinks) are always kept. token_ids [L] of real
    tokens; idf [V]; keep > head -> int64 [min(L, keep)]."""
    n = len(token_ids)
    if keep <= 0 or n <= keep:
        return np.arange(n)
    if keep <= head:
        raise DataError(f"prune_tokens {keep} keeps nothing beyond the {head} fixed leading tokens and [SEP]")
    body = idf[token_ids[head:-1]]
    order = head + np.lexsort((np.arange(len(body)), -body))  # highest idf first, then earlier position
    return np.sort(np.concatenate([np.arange(head), order[: keep - head - 1], [n - 1]]))


def corpus_idf(token_lists: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """ln(1 + (N - df + 0.5) / (df + 0.5)) per vocabulary id over the documents' distinct tokens."""
    df = np.zeros(vocab_size, np.int64)
    for t in token_lists:
        df[np.unique(np.asarray(t, np.int64))] += 1
    n = len(token_lists)
    return np.log1p((n - df + 0.5) / (df + 0.5))


def write_doc_states(path: str | Path, doc_ids: Sequence[str], states: list[np.ndarray], *,
                     fingerprint: str, meta: dict, kv: list[np.ndarray] | None = None,
                     state_dtype: str = "float16") -> Path:
    """Write per-document state arrays (each [L_i, H]; kv each [L_i, n_layers, 2, H]) atomically."""
    if state_dtype not in STATE_DTYPES:
        raise ValueError(f"state dtype {state_dtype!r}: choose from {STATE_DTYPES}")
    if len(states) != len(doc_ids) or (kv is not None and len(kv) != len(doc_ids)):
        raise ValueError(f"{len(doc_ids)} doc ids, {len(states)} state arrays")
    offsets = np.zeros(len(states) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s) for s in states])
    arrays = {"doc_ids": np.asarray(list(doc_ids), dtype=str), "offsets": offsets,
              "states": np.concatenate(states).astype(state_dtype)}
    if kv is not None:
        arrays["kv"] = np.concatenate(kv).astype(state_dtype)
    return save_index(path, arrays, method=KIND, model_fingerprint=fingerprint,
                      meta={**meta, "state_dtype": state_dtype, "has_kv": kv is not None})


@dataclass
class DocStateStore:
    """An opened store: `gather(ids)` -> padded states (or kv) of those documents."""

    path: Path
    arrays: dict
    meta: dict

    @classmethod
    def open(cls, path: str | Path, *, fingerprint: str, expect: dict) -> "DocStateStore":
        """Check kind, the settings the states depend on (`expect`: {meta key: value the model
        uses}) and the fingerprint, then memory-map. Each mismatch is an IndexFormatError."""
        stored = load_index(path, method=KIND, verify=False)  # identity first, checksums below
        for key, want in expect.items():
            have = stored.meta.get(key)
            if have != want:
                raise IndexFormatError(f"{path}: document states built with {key} {have!r}, but the model "
                                       f"uses {want!r}: rebuild them with this checkpoint (jaxir index --method mice)")
        stored = load_index(path, method=KIND, model_fingerprint=fingerprint, verify=True)
        store = cls(Path(path), stored.arrays, stored.meta)
        store._row = {d: i for i, d in enumerate(store.arrays["doc_ids"].tolist())}
        return store

    @property
    def has_kv(self) -> bool:
        return "kv" in self.arrays

    @property
    def width(self) -> int:
        """Tokens per gathered document (doc_maxlen, or prune_tokens when pruned)."""
        return int(self.meta["prune_tokens"] or self.meta["doc_maxlen"])

    def rows_of(self, doc_ids: Sequence[str]) -> list[int]:
        missing = [d for d in doc_ids if d not in self._row]
        if missing:
            raise DataError(f"{len(missing)} candidate(s) not in the document-state store {self.path}, "
                            f"e.g. {missing[0]!r} (built from another corpus?)")
        return [self._row[d] for d in doc_ids]

    def gather(self, doc_ids: Sequence[str], *, pad_to: int, kv: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(values [pad_to, width, ...] float32, mask [pad_to, width] int32) of the documents, in
        order; rows past len(doc_ids) are empty. kv: the stored keys/values instead of the states."""
        source = self.arrays["kv" if kv else "states"]
        offsets = self.arrays["offsets"]
        rows = self.rows_of(doc_ids)
        out = np.zeros((pad_to, self.width, *source.shape[1:]), np.float32)
        mask = np.zeros((pad_to, self.width), np.int32)
        for i, r in enumerate(rows):
            a, b = int(offsets[r]), int(offsets[r + 1])
            out[i, : b - a] = source[a:b]
            mask[i, : b - a] = 1
        return out, mask

    def bytes_per_token(self) -> dict:
        """Storage: bytes per stored token of the states (and kv), total bytes, tokens per doc."""
        t = int(self.arrays["offsets"][-1])
        out = {"tokens": t, "docs": len(self.arrays["doc_ids"]), "tokens_per_doc": t / max(len(self.arrays["doc_ids"]), 1),
               "states_bytes": int(self.arrays["states"].nbytes),
               "states_bytes_per_token": self.arrays["states"].nbytes / max(t, 1)}
        if self.has_kv:
            out["kv_bytes"] = int(self.arrays["kv"].nbytes)
            out["kv_bytes_per_token"] = self.arrays["kv"].nbytes / max(t, 1)
        return out
