"""Read queries for `jaxir search`: a BEIR folder (one split), a queries.jsonl[.gz] or a TSV."""
from __future__ import annotations

from pathlib import Path

from jaxir.errors import DataError, EmptyInputError, utf8_text


def _read_tsv(path: Path) -> dict[str, str]:
    queries = {}
    for lineno, line in enumerate(utf8_text(path.read_bytes(), path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected 'query-id<TAB>text', got {len(parts)} fields")
        qid, text = parts[0].strip(), parts[1].strip()
        if not text:
            raise EmptyInputError(f"{path}:{lineno}: query {qid!r} is empty")
        if qid in queries:
            raise DataError(f"{path}:{lineno}: duplicate query id {qid!r}")
        queries[qid] = text
    return queries


def read_queries(source: str | Path, *, split: str = "test") -> dict[str, str]:
    """Query id -> text, in file order."""
    from jaxir.eval.beir import read_queries_file, load_beir

    path = Path(source)
    if path.is_dir():
        return load_beir(path, split=split).queries
    if not path.is_file():
        raise FileNotFoundError(f"no queries file or BEIR folder at {path}")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return {qid: text for qid, (text, _) in read_queries_file(path).items()}
    return _read_tsv(path)
