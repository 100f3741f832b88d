"""Export learned sparse documents for Lucene engines, and read the files back (standard library).

OpenSearch / Elasticsearch `rank_features` JSON lines, one document per line::

    {"id": "d1", "text": "...", "sparse_embedding": {"insulin": 2.31, "##ulin": 0.87}}

Only strictly positive weights are written (the engines reject 0 and negatives); Lucene keeps
9 significant bits of each (about 0.4 % relative error), so nothing finer is meaningful.

Anserini / Pyserini `JsonVectorCollection` (impact index, `-impact -pretokenized`)::

    {"id": "d1", "contents": "...", "vector": {"insulin": 231, "##ulin": 87}}

Weights become integers round(w * quantization) (default 100, the SPLADE convention); terms that
round to 0 are dropped. Reading divides by the same factor, so a weight comes back within
0.5 / quantization.
"""
from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from jaxir.errors import DataError, utf8_lines
from jaxir.fs import atomic_output

RANK_FEATURES_FIELD = "sparse_embedding"
ANSERINI_QUANTIZATION = 100.0


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" else \
        open(path, mode, encoding="utf-8")


def token_weights(term_ids: Sequence[int], weights: Sequence[float], vocab: Sequence[str]) -> dict:
    """(term ids [T], weights [T]) -> {token string: weight} (positive weights only)."""
    if len(term_ids) != len(weights):
        raise ValueError(f"{len(term_ids)} term ids vs {len(weights)} weights")
    return {vocab[int(t)]: float(w) for t, w in zip(term_ids, weights) if w > 0}


def _check_doc(doc_id, vector: Mapping, where: str) -> None:
    if not isinstance(doc_id, str) or not doc_id:
        raise DataError(f"{where}: document id must be a non-empty string, got {doc_id!r}")
    for token, w in vector.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w):
            raise DataError(f"{where}: document {doc_id!r} token {token!r} has weight {w!r}")


def write_rank_features(path: str | Path, docs: Iterable[tuple[str, Mapping[str, float], str | None]],
                        *, field: str = RANK_FEATURES_FIELD) -> int:
    """Write (doc id, {token: weight}, text or None) triples as rank_features JSON lines.

    Returns the number of documents written. A `.gz` suffix writes gzip. The file appears whole
    or not at all (a bad document or a kill leaves the previous one).
    """
    path, n = Path(path), 0
    with atomic_output(path) as tmp, _open(tmp, "w") as f:
        for n, (doc_id, vector, text) in enumerate(docs, start=1):
            _check_doc(doc_id, vector, f"{path} document {n}")
            record = {"id": doc_id}
            if text is not None:
                record["text"] = text
            record[field] = {t: float(w) for t, w in vector.items() if w > 0}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return n


def write_json_vector_collection(path: str | Path,
                                 docs: Iterable[tuple[str, Mapping[str, float], str | None]],
                                 *, quantization: float = ANSERINI_QUANTIZATION) -> int:
    """Write (doc id, {token: weight}, text or None) as Anserini JsonVectorCollection lines.

    contents is the text ("" when None); vector weights are round(w * quantization), zeros dropped.
    """
    if quantization <= 0:
        raise ValueError(f"quantization must be > 0, got {quantization}")
    path, n = Path(path), 0
    with atomic_output(path) as tmp, _open(tmp, "w") as f:
        for n, (doc_id, vector, text) in enumerate(docs, start=1):
            _check_doc(doc_id, vector, f"{path} document {n}")
            ints = {t: int(round(w * quantization)) for t, w in vector.items()}
            record = {"id": doc_id, "contents": text or "",
                      "vector": {t: q for t, q in ints.items() if q > 0}}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return n


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    for lineno, line in utf8_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, record


def _vector(record: dict, key: str, path: Path, lineno: int) -> dict:
    vector = record.get(key)
    if not isinstance(vector, dict):
        raise DataError(f"{path}:{lineno}: no {key!r} object")
    _check_doc(record.get("id"), vector, f"{path}:{lineno}")
    return vector


def read_rank_features(path: str | Path, *, field: str = RANK_FEATURES_FIELD
                       ) -> Iterator[tuple[str, dict[str, float], str | None]]:
    """Yield (doc id, {token: weight}, text or None) from a rank_features JSON lines file."""
    path = Path(path)
    for lineno, record in _records(path):
        vector = _vector(record, field, path, lineno)
        yield record["id"], {t: float(w) for t, w in vector.items()}, record.get("text")


def read_json_vector_collection(path: str | Path, *, quantization: float = ANSERINI_QUANTIZATION
                                ) -> Iterator[tuple[str, dict[str, float], str]]:
    """Yield (doc id, {token: int weight / quantization}, contents) from a JsonVectorCollection."""
    path = Path(path)
    for lineno, record in _records(path):
        vector = _vector(record, "vector", path, lineno)
        for token, w in vector.items():
            if not isinstance(w, int) or w < 0:
                raise DataError(f"{path}:{lineno}: token {token!r} weight {w!r} is not a "
                                f"non-negative integer")
        yield record["id"], {t: w / quantization for t, w in vector.items()}, record.get("contents", "")


def index_documents(index, vocab: Sequence[str]) -> Iterator[tuple[str, dict[str, float], None]]:
    """Yield (doc id, {token: dequantised weight}, None) for every document of a SparseIndex.

    Transposes the term-major postings to document order (one argsort over all postings).
    """
    import numpy as np

    inv = index.inverted
    terms = np.repeat(np.arange(inv.vocab_size), np.diff(inv.offsets))
    order = np.argsort(inv.postings, kind="stable")
    weights = inv.weights[order].astype(np.float64) * inv.scale
    bounds = np.searchsorted(inv.postings[order], np.arange(inv.n_docs + 1))
    sorted_terms = terms[order]
    for d in range(inv.n_docs):
        lo, hi = bounds[d], bounds[d + 1]
        yield str(index.doc_ids[d]), token_weights(sorted_terms[lo:hi], weights[lo:hi], vocab), None
