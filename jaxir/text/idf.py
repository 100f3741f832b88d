"""IDF tables for inference-free sparse queries (NumPy + standard library only).

    idf_t = ln(1 + (N - df_t + 0.5) / (df_t + 0.5)),   df_t = number of documents containing t

Documents are WordPiece id lists without special tokens; a token counts once per document.

On disk the table is an OpenSearch-style `idf.json`, a flat {token string: weight} object with
one entry per token seen in the corpus (df > 0), plus a sidecar `idf.json.meta.json` holding
{"vocab_size", "vocab_sha256", "n_docs", "missing_idf"}.

Missing-token policy: a token absent from the table (df = 0: it never occurs in the corpus)
gets weight 0 (MISSING_IDF). Reason: such a query token carries no lexical evidence in this
corpus - BM25 drops it too - and a weight of 1 would let MLM expansion terms the corpus never
contains score on their own. The formula itself would give df = 0 the *largest* IDF, ln(2N + 2),
which rewards exactly that noise. The same value is what `jaxir.ops.sparse.idf_weights` uses by
default, so training and search agree.

Loading checks the vocabulary: tokens unknown to the tokenizer's vocabulary (more than
max_unknown_fraction of the file), or a sidecar whose vocabulary fingerprint differs, raise
DataError - an IDF file made for another tokenizer would silently mis-weight every query.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from jaxir.errors import DataError, utf8_text
from jaxir.fs import write_text

MISSING_IDF = 0.0
META_SUFFIX = ".meta.json"


def vocab_fingerprint(vocab: Sequence[str]) -> str:
    """sha256 (16 hex chars) of the id-ordered token strings."""
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]


def tokenizer_vocab(tokenizer) -> list[str]:
    """Token strings in id order (index i = token id i)."""
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


def document_frequencies(token_id_lists: Iterable[Sequence[int]], vocab_size: int,
                         *, chunk: int = 4096) -> tuple[np.ndarray, int]:
    """(df [V] int64, N): in how many documents each token id occurs (streamed in chunks)."""
    df = np.zeros(vocab_size, np.int64)
    n_docs, keys = 0, []

    def flush():
        if keys:
            flat = np.unique(np.concatenate(keys))  # unique (doc, token) pairs
            np.add.at(df, flat % vocab_size, 1)
            keys.clear()

    for n_docs, ids in enumerate(token_id_lists, start=1):
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise DataError(f"document {n_docs - 1}: token id outside [0, {vocab_size})")
        keys.append((n_docs - 1) * vocab_size + ids)
        if len(keys) >= chunk:
            flush()
    flush()
    return df, n_docs


def idf_from_df(df: np.ndarray, n_docs: int, *, missing_idf: float = MISSING_IDF) -> np.ndarray:
    """idf [V] float32 from df [V]; df == 0 -> missing_idf."""
    df = np.asarray(df, np.float64)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    return np.where(df > 0, idf, missing_idf).astype(np.float32)


def compute_idf(token_id_lists: Iterable[Sequence[int]], vocab_size: int,
                *, missing_idf: float = MISSING_IDF) -> np.ndarray:
    """IDF [V] float32 over documents given as token id lists (no special tokens)."""
    df, n_docs = document_frequencies(token_id_lists, vocab_size)
    if n_docs == 0:
        raise DataError("cannot compute IDF over zero documents")
    return idf_from_df(df, n_docs, missing_idf=missing_idf)


def save_idf(path: str | Path, idf: np.ndarray, vocab: Sequence[str], *, n_docs: int | None = None,
             missing_idf: float = MISSING_IDF) -> Path:
    """Write idf.json ({token: weight} for weights != missing_idf) and its sidecar."""
    idf = np.asarray(idf, np.float64)
    if idf.shape != (len(vocab),):
        raise ValueError(f"idf shape {idf.shape} does not match a vocabulary of {len(vocab)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = {vocab[i]: float(idf[i]) for i in np.flatnonzero(idf != missing_idf)}
    write_text(path, json.dumps(table, ensure_ascii=False))
    meta = {"vocab_size": len(vocab), "vocab_sha256": vocab_fingerprint(vocab), "n_docs": n_docs,
            "missing_idf": missing_idf}
    write_text(Path(str(path) + META_SUFFIX), json.dumps(meta, indent=1) + "\n")
    return path


def idf_files(idf_file: str | Path, name: str) -> dict[str, Path]:
    """{name in a model folder: source} for an idf.json and its sidecar when it has one: what
    `save_model(files=...)` copies in, so the folder is complete when its model.json appears."""
    files = {name: Path(idf_file)}
    sidecar = Path(str(idf_file) + META_SUFFIX)
    if sidecar.is_file():
        files[name + META_SUFFIX] = sidecar
    return files


def _read_table(path: Path) -> dict:
    try:
        table = json.loads(utf8_text(path.read_bytes(), path))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable idf.json ({e})") from e
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected a JSON object {{token: weight}}, got {type(table).__name__}")
    for token, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{path}: token {token!r} has a non-numeric or non-finite weight {value!r}")
    return table


def load_idf(path: str | Path, vocab: Sequence[str], *, missing_idf: float | None = None,
             max_unknown_fraction: float = 0.01) -> np.ndarray:
    """idf [V] float32 for this vocabulary from an idf.json (any OpenSearch-style file).

    Tokens not in the file get missing_idf (default: the sidecar's value, else MISSING_IDF).
    """
    path = Path(path)
    table = _read_table(path)
    meta_file = Path(str(path) + META_SUFFIX)
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    if meta and meta.get("vocab_sha256") != vocab_fingerprint(vocab):
        raise DataError(f"{path} was computed for another vocabulary (fingerprint "
                        f"{meta.get('vocab_sha256')!r}, {meta.get('vocab_size')} tokens); this "
                        f"tokenizer's is {vocab_fingerprint(vocab)!r} ({len(vocab)} tokens)")
    token_id = {t: i for i, t in enumerate(vocab)}
    unknown = [t for t in table if t not in token_id]
    if table and len(unknown) > max_unknown_fraction * len(table):
        raise DataError(f"{path}: {len(unknown)} of {len(table)} tokens are unknown to this "
                        f"tokenizer (e.g. {unknown[:5]}): the file belongs to another vocabulary")
    if missing_idf is None:
        missing_idf = float(meta.get("missing_idf", MISSING_IDF))
    idf = np.full(len(vocab), missing_idf, np.float32)
    for token, value in table.items():
        if token in token_id:
            idf[token_id[token]] = value
    return idf
