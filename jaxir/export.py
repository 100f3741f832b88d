"""Export learned sparse documents and queries for Lucene engines, and read documents back (standard library).

OpenSearch / Elasticsearch `rank_features` JSON lines, one document per line::

    {"id": "d1", "text": "...", "sparse_embedding": {"insulin": 2.31, "##ulin": 0.87}}

Only strictly positive weights are written (the engines reject 0 and negatives); Lucene keeps
9 significant bits of each (about 0.4 % relative error), so nothing finer is meaningful. A query
is an OpenSearch search body, one per line, with its id beside it (`neural_sparse` with raw
`query_tokens`, OpenSearch 2.14 and later)::

    {"id": "q1", "body": {"query": {"neural_sparse": {"sparse_embedding": {"query_tokens": {"insulin": 6.1}}}}}}

Anserini / Pyserini `JsonVectorCollection` (impact index, `--impact --pretokenized`)::

    {"id": "d1", "contents": "...", "vector": {"insulin": 231, "##ulin": 87}}

Weights become integers round(w * scale) (default 100, the SPLADE convention); terms that round
to 0 are dropped. Reading divides by the same factor, so a weight comes back within 0.5 / scale.
A query is a pretokenized impact topic, `id<TAB>tokens`, each token repeated round(w * scale)
times (what `pyserini.search.lucene --impact --pretokenized` counts into the query weight)::

    q1\tinsulin insulin insulin ##ulin

so Lucene scores the exact integer dot product sum_t round(q_t scale) round(w_dt scale).
"""
from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from jaxir.errors import DataError, json_lines
from jaxir.fs import atomic_output

RANK_FEATURES_FIELD = "sparse_embedding"
ANSERINI_SCALE = 100.0


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" else \
        open(path, mode, encoding="utf-8")


def token_weights(term_ids: Sequence[int], weights: Sequence[float], vocab: Sequence[str]) -> dict:
    """(term ids [T], weights [T]) -> {token string: weight} (positive weights only)."""
    if len(term_ids) != len(weights):
        raise ValueError(f"{len(term_ids)} term ids vs {len(weights)} weights")
    return {vocab[int(t)]: float(w) for t, w in zip(term_ids, weights) if w > 0}


def quantize(vector: Mapping[str, float], scale: float) -> dict[str, int]:
    """{token: weight} -> {token: round(weight * scale)}, the tokens that round to 0 or below dropped."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    ints = {t: int(round(w * scale)) for t, w in vector.items()}
    return {t: q for t, q in ints.items() if q > 0}


def _check_doc(doc_id, vector: Mapping, where: str, what: str = "document") -> None:
    if not isinstance(doc_id, str) or not doc_id:
        raise DataError(f"{where}: {what} id must be a non-empty string, got {doc_id!r}")
    for token, w in vector.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w):
            raise DataError(f"{where}: {what} {doc_id!r} token {token!r} has weight {w!r}")


def _write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write each line (newline added) to `path` (gzip for `.gz`), whole or not at all (a bad
    record or a kill leaves the previous file); returns the number of lines."""
    n = 0
    with atomic_output(path) as tmp, _open(tmp, "w") as f:
        for n, line in enumerate(lines, start=1):
            f.write(line + "\n")
    return n


def write_rank_features(path: str | Path, docs: Iterable[tuple[str, Mapping[str, float], str | None]],
                        *, field: str = RANK_FEATURES_FIELD) -> int:
    """Write (doc id, {token: weight}, text or None) triples as rank_features JSON lines.

    Returns the number of documents written. A `.gz` suffix writes gzip. The file appears whole
    or not at all (a bad document or a kill leaves the previous one).
    """
    path = Path(path)

    def lines():
        for n, (doc_id, vector, text) in enumerate(docs, start=1):
            _check_doc(doc_id, vector, f"{path} document {n}")
            record = {"id": doc_id, **({} if text is None else {"text": text}),
                      field: {t: float(w) for t, w in vector.items() if w > 0}}
            yield json.dumps(record, ensure_ascii=False)
    return _write_lines(path, lines())


def write_json_vector_collection(path: str | Path,
                                 docs: Iterable[tuple[str, Mapping[str, float], str | None]],
                                 *, scale: float = ANSERINI_SCALE) -> int:
    """Write (doc id, {token: weight}, text or None) as Anserini JsonVectorCollection lines.

    contents is the text ("" when None); vector weights are `quantize(w, scale)`.
    """
    quantize({}, scale)  # a bad scale fails before the file is touched
    path = Path(path)

    def lines():
        for n, (doc_id, vector, text) in enumerate(docs, start=1):
            _check_doc(doc_id, vector, f"{path} document {n}")
            yield json.dumps({"id": doc_id, "contents": text or "", "vector": quantize(vector, scale)},
                             ensure_ascii=False)
    return _write_lines(path, lines())


def write_impact_queries(path: str | Path, queries: Iterable[tuple[str, Mapping[str, float]]],
                         *, scale: float = ANSERINI_SCALE) -> tuple[int, list[str]]:
    """Write (query id, {token: weight}) as pretokenized impact topics: `id<TAB>tokens`, each
    token repeated round(w * scale) times (`quantize`), in the order given.

    A query none of whose weights rounds above 0 has nothing to search: it is left out (Anserini
    reads an empty topic as no topic). Returns (lines written, the ids left out).
    """
    quantize({}, scale)
    path, skipped = Path(path), []

    def lines():
        for n, (qid, vector) in enumerate(queries, start=1):
            where = f"{path} query {n}"
            _check_doc(qid, vector, where, "query")
            if any(c in qid for c in "\t\r\n"):
                raise DataError(f"{where}: query id {qid!r} holds a tab or a line break")
            ints = quantize(vector, scale)
            bad = next((t for t in ints if t.split() != [t]), None)  # the reader splits on white space
            if bad is not None:
                raise DataError(f"{where}: query {qid!r} token {bad!r} is empty or holds white space")
            if not ints:
                skipped.append(qid)
                continue
            yield qid + "\t" + " ".join(" ".join([t] * q) for t, q in ints.items())
    return _write_lines(path, lines()), skipped


def write_neural_sparse_queries(path: str | Path, queries: Iterable[tuple[str, Mapping[str, float]]],
                                *, field: str = RANK_FEATURES_FIELD) -> int:
    """Write (query id, {token: weight}) as `{"id": qid, "body": <OpenSearch search body>}` lines,
    the body a `neural_sparse` query of the positive weights on `field` (the rank_features field
    the documents were indexed into). Returns the number of queries."""
    path = Path(path)

    def lines():
        for n, (qid, vector) in enumerate(queries, start=1):
            _check_doc(qid, vector, f"{path} query {n}", "query")
            tokens = {t: float(w) for t, w in vector.items() if w > 0}
            body = {"query": {"neural_sparse": {field: {"query_tokens": tokens}}}}
            yield json.dumps({"id": qid, "body": body}, ensure_ascii=False)
    return _write_lines(path, lines())


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    for lineno, record in json_lines(path):
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


def read_json_vector_collection(path: str | Path, *, scale: float = ANSERINI_SCALE
                                ) -> Iterator[tuple[str, dict[str, float], str]]:
    """Yield (doc id, {token: int weight / scale}, contents) from a JsonVectorCollection."""
    path = Path(path)
    for lineno, record in _records(path):
        vector = _vector(record, "vector", path, lineno)
        for token, w in vector.items():
            if not isinstance(w, int) or w < 0:
                raise DataError(f"{path}:{lineno}: token {token!r} weight {w!r} is not a "
                                f"non-negative integer")
        yield record["id"], {t: w / scale for t, w in vector.items()}, record.get("contents", "")


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


def index_queries(index, vocab: Sequence[str], queries: Mapping[str, str]
                  ) -> Iterator[tuple[str, dict[str, float]]]:
    """Yield (query id, {token: weight}) for each query text, weighted as the index's own search
    weights it (`index.query_vector`: inference-free IDF weights, special tokens dropped)."""
    for qid, text in queries.items():
        yield qid, token_weights(*index.query_vector(text), vocab)
