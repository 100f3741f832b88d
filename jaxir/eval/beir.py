"""BEIR datasets: load a local folder, or download the public zip once into a cache.

A BEIR folder holds ``corpus.jsonl[.gz]`` (``{"_id", "title", "text", ...}`` per line),
``queries.jsonl[.gz]`` (``{"_id", "text", ...}``) and ``qrels/<split>.tsv`` (header
``query-id corpus-id score``, tab-separated, integer grades). Imports the standard library only.

Loading rules (errors name the file and 1-based line, or the id):

* malformed JSON, a record without ``_id``, a duplicate id, a qrels row without exactly 3 fields,
  a non-integer grade, an unknown split, or a qrels query id with no query text: ``DataError``.
* a query of the split whose text is empty: ``EmptyInputError``. Queries the split does not use
  are not checked.
* a document whose title and text are both empty is skipped (one ``BeirDataWarning`` with the
  count).
* qrels rows naming a doc id absent from the corpus (or skipped as empty) are **kept**, as BEIR's
  loader and pytrec_eval keep them (one ``BeirDataWarning`` with the count): no run can retrieve
  such a document, so it counts as a miss, and its query stays in the mean. Training code takes
  positives through ``jaxir.data.mine.positives_of(qrels, corpus)``, which skips them.
* the same (query, doc) pair twice with different grades is a ``DataError`` naming both lines
  (BEIR's loader and pytrec_eval would silently keep the last); an identical repeat is ignored.
* qrels rows with grade <= 0 are kept; metrics treat them as judged non-relevant.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jaxir.errors import DataError, EmptyInputError, json_lines, utf8_line

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
DEFAULT_CACHE_DIR = "~/.cache/jaxir/beir"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_EXAMPLES = 5  # ids quoted in a warning


class BeirDataWarning(UserWarning):
    """Records were skipped while loading a BEIR dataset (the message says how many and why)."""


def doc_text(doc: dict) -> str:
    """BEIR / sentence-transformers convention: ``(title + " " + text).strip()``."""
    return f"{doc.get('title', '')} {doc.get('text', '')}".strip()


def corpus_fingerprint(doc_ids, texts) -> str:
    """sha256 over the (id, text) pairs in order, each length-prefixed so no two corpora share a
    stream: what an index built from the corpus records and is checked against."""
    digest = hashlib.sha256()
    for doc_id, text in zip(doc_ids, texts, strict=True):
        for part in (str(doc_id).encode("utf-8"), str(text).encode("utf-8")):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR dataset.

    corpus: doc id -> {"title", "text"}, in file order. queries: query id -> text, only the
    split's queries, in qrels order. qrels: query id -> {doc id -> grade}.
    """

    name: str
    split: str
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def doc_texts(self) -> list[str]:
        """Texts aligned with ``doc_ids`` (see ``doc_text``)."""
        return [doc_text(doc) for doc in self.corpus.values()]

    @cached_property
    def corpus_fingerprint(self) -> str:
        """`corpus_fingerprint` of the texts retrievers index (computed once)."""
        return corpus_fingerprint(self.doc_ids, self.doc_texts())

    def text_of(self, doc_id: str) -> str:
        """One document's text; an id outside the corpus is a ``DataError`` naming it."""
        if doc_id not in self.corpus:
            raise DataError(f"document {doc_id!r} is not in the {self.name} corpus")
        return doc_text(self.corpus[doc_id])

    @property
    def query_ids(self) -> list[str]:
        return list(self.queries)

    def query_texts(self) -> list[str]:
        return list(self.queries.values())


def load_beir(
    path_or_name: str | os.PathLike,
    split: str = "test",
    *,
    cache_dir: str | os.PathLike | None = None,
    url: str = BEIR_URL,
) -> BeirDataset:
    """Load ``split`` of a BEIR folder; a dataset name (e.g. "scifact") that is not an existing
    folder is downloaded from ``url.format(name=name)`` into ``cache_dir/<name>`` first."""
    folder, name = _resolve_folder(path_or_name, cache_dir, url)
    qrels_path = _qrels_path(folder, split)
    corpus = _read_corpus(_find_jsonl(folder, "corpus"))
    queries_path = _find_jsonl(folder, "queries")
    all_queries = read_queries_file(queries_path)
    qrels = _read_qrels(qrels_path, all_queries, corpus)
    queries = {}
    for qid in qrels:
        text, line = all_queries[qid]
        if not text.strip():
            raise EmptyInputError(
                f"{queries_path}:{line}: query {qid!r} ({split} split) has empty text")
        queries[qid] = text
    return BeirDataset(name=name, split=split, corpus=corpus, queries=queries, qrels=qrels)


def load_corpus(path_or_name: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                url: str = BEIR_URL) -> tuple[str, dict[str, dict]]:
    """(name, corpus) of a BEIR folder (or dataset name, downloaded as `load_beir` does): the
    corpus alone, read by the same rules, no split or qrels needed."""
    folder, name = _resolve_folder(path_or_name, cache_dir, url)
    return name, _read_corpus(_find_jsonl(folder, "corpus"))


def corpus_from_records(records, *, where: str = "corpus") -> dict[str, dict]:
    """doc id -> {"title", "text"} from an iterable of dicts with "_id" (or "id"), "title" and
    "text" (or a mapping id -> such a dict, or id -> text), by the corpus file's rules: a record
    without a string id, a duplicate id or a non-string field is a DataError naming its
    position; documents with neither title nor text are skipped with one BeirDataWarning."""
    if isinstance(records, Mapping):
        records = ({"_id": k, **(v if isinstance(v, Mapping) else {"text": v})} for k, v in records.items())
    elif isinstance(records, (str, bytes)):
        raise DataError(f"{where}: a corpus is a BEIR folder path or records, not one string")
    return _collect_corpus(_checked_records(records, where), where)


def _checked_records(records, where: str) -> Iterator[tuple[int, str, dict]]:
    """(position, id, record) per record of an in-memory corpus, ids checked as the file's are."""
    seen: dict[str, int] = {}
    for pos, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise DataError(f"{where}: record {pos} is a {type(record).__name__}, not a dict "
                            "with '_id' (or 'id'), 'title' and 'text'")
        rid = _new_id(record.get("_id", record.get("id")), seen, pos,
                      missing=f"{where}: record {pos} has no string '_id' (or 'id')",
                      again=lambda rid, first: f"{where}: record {pos}: duplicate id {rid!r} (first at record {first})")
        yield pos, rid, record


def _new_id(raw, seen: dict[str, int], at: int, *, missing: str, again) -> str:
    """`raw` as an id (non-empty str or int, not bool) recorded in `seen` at `at`; DataError `missing`
    if none, `again(id, first position)` if seen. One check for records and file lines."""
    if not isinstance(raw, (str, int)) or isinstance(raw, bool) or str(raw) == "":
        raise DataError(missing)
    rid = str(raw)
    if rid in seen:
        raise DataError(again(rid, seen[rid]))
    seen[rid] = at
    return rid


def _collect_corpus(items: Iterable[tuple[int, str, dict]], where: str | Path) -> dict[str, dict]:
    """doc id -> {"title", "text"} of checked (position, id, record) items; documents with
    neither title nor text are skipped with one warning, and none left is an EmptyInputError."""
    corpus, empty = {}, []
    for pos, rid, record in items:
        doc = {key: _text_field(record, key, Path(where), pos) for key in ("title", "text")}
        if doc_text(doc):
            corpus[rid] = doc
        else:
            empty.append(rid)
    if empty:
        _warn(f"{where}: skipped {len(empty)} empty documents (no title, no text)", empty)
    if not corpus:
        raise EmptyInputError(f"{where}: corpus has no non-empty documents")
    return corpus


def _resolve_folder(path_or_name, cache_dir, url) -> tuple[Path, str]:
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path, path.resolve().name
    name = str(path_or_name)
    if not _NAME_RE.match(name):
        raise DataError(f"{name!r} is neither an existing folder nor a BEIR dataset name")
    cache = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    target = cache / name
    if not target.is_dir():
        download_beir(name, cache, url=url)
    return target, name


def download_beir(name: str, cache_dir: str | os.PathLike, *, url: str = BEIR_URL) -> Path:
    """Download and extract ``name`` into ``cache_dir/name`` atomically (temp dir + rename)."""
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / name
    source = url.format(name=name)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:
            with urllib.request.urlopen(source, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as err:
            raise DataError(
                f"could not download BEIR dataset {name!r} from {source}: {err}; "
                "download and unzip it yourself, then pass the folder"
            ) from err
        root = _extract(archive, Path(tmp) / "extracted", name)
        try:
            os.rename(root, target)
        except OSError:
            if not target.is_dir():  # not a concurrent download that finished first
                raise
    return target


def _extract(archive: Path, dest: Path, name: str) -> Path:
    """Unzip ``archive`` into ``dest``; return the folder that holds the corpus file."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                    raise DataError(f"{archive}: unsafe path {member!r} in zip")
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive}: not a zip file ({err})") from err
    candidates = [dest, dest / name, *sorted(p for p in dest.iterdir() if p.is_dir())]
    for folder in candidates:
        if any((folder / f).is_file() for f in ("corpus.jsonl", "corpus.jsonl.gz")):
            return folder
    raise DataError(f"{archive}: no corpus.jsonl found in the zip")


def _qrels_path(folder: Path, split: str) -> Path:
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(f"{folder}: unknown split {split!r}; available splits: {available}")
    return path


def _find_jsonl(folder: Path, stem: str) -> Path:
    for path in (folder / f"{stem}.jsonl", folder / f"{stem}.jsonl.gz"):
        if path.is_file():
            return path
    raise DataError(f"{folder}: missing {stem}.jsonl or {stem}.jsonl.gz")


def _iter_records(path: Path) -> Iterator[tuple[int, str, dict]]:
    """(line number, id, record) per non-blank line; checks UTF-8, JSON, ``_id``, duplicates."""
    seen: dict[str, int] = {}
    lineno = 0
    try:
        for lineno, record in json_lines(path):  # bytes decoded per line: errors name their line
            rid = _new_id(record.get("_id") if isinstance(record, dict) else None, seen, lineno,
                          missing=f"{path}:{lineno}: record has no string '_id'",
                          again=lambda rid, first: f"{path}:{lineno}: duplicate id {rid!r} (first on line {first})")
            yield lineno, rid, record
    except (EOFError, OSError) as err:  # truncated or not gzip (gzip.BadGzipFile is an OSError)
        raise DataError(f"{path}:{lineno + 1}: cannot read ({err})") from None


def _text_field(record: dict, key: str, path: Path, lineno: int) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: field {key!r} is {type(value).__name__}, not a string")
    return value


def _read_corpus(path: Path) -> dict[str, dict]:
    return _collect_corpus(_iter_records(path), path)


def read_queries_file(path: Path) -> dict[str, tuple[str, int]]:
    """query id -> (text, line number)."""
    return {qid: (_text_field(rec, "text", path, ln), ln) for ln, qid, rec in _iter_records(path)}


def _read_qrels(path: Path, queries: dict, corpus: dict) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    missing, seen, first = [], {}, True
    with open(path, "rb") as lines:
        for lineno, raw in enumerate(lines, start=1):
            line = utf8_line(raw, path, lineno)
            if not line.strip():
                continue
            fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
            if len(fields) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 tab-separated fields "
                                f"(query-id, corpus-id, score), got {len(fields)}")
            qid, did, grade = fields
            if first and not _is_int(grade):
                first = False
                continue  # header
            first = False
            if not _is_int(grade):
                raise DataError(f"{path}:{lineno}: score {grade!r} is not an integer")
            if qid not in queries:
                raise DataError(
                    f"{path}:{lineno}: query id {qid!r} has no text in the queries file")
            if (qid, did) in seen:
                if qrels[qid][did] != int(grade):
                    raise DataError(f"{path}:{lineno}: query {qid!r}, document {did!r} graded {int(grade)} "
                                    f"here but {qrels[qid][did]} on line {seen[qid, did]}: conflicting qrels rows")
                continue
            seen[qid, did] = lineno
            if did not in corpus:
                missing.append(did)
            qrels.setdefault(qid, {})[did] = int(grade)
    if missing:
        _warn(f"{path}: {len(missing)} qrels rows name documents not in the corpus (or skipped as "
              "empty); kept as BEIR and pytrec_eval keep them: they count as misses", missing)
    if not qrels:
        raise EmptyInputError(f"{path}: no usable qrels rows")
    return qrels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _warn(message: str, ids: list[str]) -> None:
    examples = ", ".join(repr(i) for i in ids[:_EXAMPLES])
    warnings.warn(f"{message} (e.g. {examples})", BeirDataWarning, stacklevel=4)
