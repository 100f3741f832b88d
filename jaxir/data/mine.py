"""Hard-negative mining: rank the corpus for every training query with a first-stage retriever.

Output: JSONL, one line per query that has at least one positive (qrels grade > 0)::

    {"qid": "q1", "positives": ["d7"], "candidates": [["d3", 12.5], ["d9", 11.0], ...]}

``candidates`` are the retriever's top ``depth`` documents that are NOT positives, best first,
with their first-stage scores. Judged non-relevant documents (grade <= 0) stay candidates.
The file is written to a temporary name and renamed, so a reader never sees half a file.

Beside it, ``<file>.key.json`` records what it was mined from (``mined_key``: the split's query
texts, qrels and corpus, by digest, the miner's `retriever_key` and the depth) and the file's own
sha256. Recipes reuse mined negatives, and the files derived from them (subsets, teacher scores),
only through ``keyed_output``: when the record matches the current inputs; otherwise they are
rebuilt, one line saying which and why (qrels corrected in place mean new positives).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from jaxir.errors import DataError, utf8_line
from jaxir.fs import INDEX_CACHE, atomic_output, write_text

KEY_SUFFIX = ".key.json"  # <file>.key.json: {"key": what the file derives from, "sha256": its bytes}


def positives_of(qrels: dict[str, int], corpus=None) -> list[str]:
    """Doc ids with grade > 0, in qrels order; with `corpus`, only those it holds (qrels keep
    judged documents the corpus lacks, as BEIR does: they count as misses in evaluation, but
    there is no text to train on)."""
    return [d for d, g in qrels.items() if g > 0 and (corpus is None or d in corpus)]


def mine_hard_negatives(dataset, retriever_name: str = "bm25", depth: int = 100, *,
                        out: str | Path, index_dir: str | Path | None = None,
                        cache: str | Path = INDEX_CACHE, query_batch: int = 1024,
                        **retriever_options) -> dict:
    """Mine ``depth`` non-positive candidates per query of ``dataset`` (a BeirDataset split).

    Any first-stage method of the registry mines (bm25, dense, colbert through PLAID, sparse,
    i3); `retriever_options` are its options, e.g. ``checkpoint=`` a trained model, as `jaxir
    eval` takes them. The index is built in ``index_dir`` (default: the shared cache folder keyed
    by corpus and retriever settings) unless one of this corpus is there. Returns a summary dict
    (counts, timing, the retriever and its options). `query_batch`: queries searched per call.
    """
    from jaxir.pipeline.built_from import index_for
    from jaxir.retrievers.registry import first_stage_methods, get_retriever

    miners = first_stage_methods()
    if retriever_name not in miners:  # a reranker has no index to rank the corpus with
        raise ValueError(f"retriever {retriever_name!r} cannot mine; choose from {miners}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    retriever = get_retriever(retriever_name, **retriever_options)
    index_dir, build_s = index_for(retriever, dataset, index_dir, Path(cache), given=set(retriever_options))
    searcher = retriever.open(index_dir)
    queries = {q: dataset.queries[q] for q in dataset.queries
               if positives_of(dataset.qrels.get(q, {}), dataset.corpus)}
    t = time.perf_counter()
    qrels = {q: {d: g for d, g in dataset.qrels[q].items() if d in dataset.corpus} for q in queries}
    records = _mine(searcher, queries, qrels, depth, query_batch)
    key_path(out).unlink(missing_ok=True)  # no record of the old file survives a failed write
    n = write_mined(out, records)
    write_key(out, mined_key(dataset, retriever, depth))
    return {"queries": n, "skipped_without_positive": len(dataset.queries) - len(queries),
            "depth": depth, "retriever": retriever_name,
            "options": {k: str(v) for k, v in retriever_options.items() if v is not None},
            "index": str(index_dir),
            "index_build_s": build_s, "search_s": time.perf_counter() - t, "out": str(out)}


def _json_sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


def split_digests(dataset, *, corpus: bool = True) -> dict:
    """The content of a split that mined and teacher files derive from: its queries' texts and
    its qrels (sha256 of their JSON, in the split's order) and, with `corpus`, the corpus's
    fingerprint. Not its name or path: a folder moved is the same split, qrels corrected in
    place are not."""
    out = {"split": dataset.split, "queries_sha256": _json_sha256(dataset.queries),
           "qrels_sha256": _json_sha256(dataset.qrels)}
    if corpus:
        out["corpus_sha256"] = dataset.corpus_fingerprint
    return out


def mined_key(dataset, retriever, depth: int) -> dict:
    """What a mined file derives from: the split's content (`split_digests`), the miner
    (`retriever_key`: method, build settings, contents of its model and data files) and depth."""
    from jaxir.pipeline.built_from import retriever_key

    return {"split": split_digests(dataset), "miner": retriever_key(retriever), "depth": depth}


def key_path(path: str | Path) -> Path:
    return Path(str(path) + KEY_SUFFIX)


def write_key(path: str | Path, key: dict) -> None:
    """Record beside `path` what it derives from and the sha256 of its bytes (atomically)."""
    from jaxir.models.hf import content_digest

    write_text(key_path(path), json.dumps({"key": key, "sha256": content_digest(path)}, indent=1) + "\n")


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for name, sub in value.items() for k, v in _flat(sub, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): value}


def stale_reason(path: str | Path, key: dict) -> str | None:
    """Why the file at `path` may not be reused for `key` (None: it may): missing, no key
    record beside it, its bytes changed since, or the inputs that changed (dotted key names)."""
    from jaxir.models.hf import content_digest

    path = Path(path)
    if not path.is_file():
        return "none yet"
    try:
        record = json.loads(key_path(path).read_text(encoding="utf-8"))
        recorded, digest = record["key"], record["sha256"]
    except FileNotFoundError:
        return f"no {key_path(path).name} beside it records what it was made from"
    except (ValueError, KeyError, TypeError):
        return f"{key_path(path).name} is not a key record"
    if recorded != key:
        old, new = _flat(recorded), _flat(key)
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return "changed since it was made: " + ", ".join(changed)
    if digest != content_digest(path):
        return "its bytes changed since it was made"
    return None


def keyed_output(path: str | Path, key: dict, build, *, what: str) -> Path:
    """`path`, reused when its key record says it derives from `key` (and it is unchanged since),
    else made anew by `build(path)` and recorded; one line says which (and why)."""
    path = Path(path)
    why = stale_reason(path, key)
    if why is None:
        print(f"{what}: reused {path} (same {', '.join(key)})")
        return path
    print(f"{what}: building {path} ({why})")
    key_path(path).unlink(missing_ok=True)  # a failed build leaves no record to match
    build(path)
    write_key(path, key)
    return path


def mine_or_reuse(dataset, retriever_name: str, depth: int, *, out: str | Path,
                  cache: str | Path = INDEX_CACHE, **retriever_options) -> tuple[Path, dict]:
    """(mined file, `mine_hard_negatives` summary, {} when reused): `out` is reused only when its
    key record matches this split's content, this miner and depth (`mined_key`)."""
    from jaxir.retrievers.registry import get_retriever

    summary: dict = {}

    def build(path):
        summary.update(mine_hard_negatives(dataset, retriever_name, depth, out=path, cache=cache,
                                           **retriever_options))
        print(summary)

    key = mined_key(dataset, get_retriever(retriever_name, **retriever_options), depth)
    return keyed_output(out, key, build, what="negatives"), summary


def _mine(searcher, queries: dict[str, str], qrels, depth: int, query_batch: int) -> Iterator[dict]:
    """Search in batches of queries; over-fetch by the query's positive count, then drop them."""
    qids = list(queries)
    extra = max(len(positives_of(qrels[q])) for q in qids) if qids else 0
    for start in range(0, len(qids), query_batch):
        chunk = qids[start:start + query_batch]
        hits = searcher.search([queries[q] for q in chunk], depth + extra)
        for qid, (doc_ids, scores) in zip(chunk, hits):
            pos = positives_of(qrels[qid])
            pos_set = set(pos)
            cands = [[d, float(s)] for d, s in zip(doc_ids, scores) if d not in pos_set]
            yield {"qid": qid, "positives": pos, "candidates": cands[:depth]}


def write_mined(path: str | Path, records) -> int:
    """Write records as JSONL atomically, one writer at a time (a failed or killed writer leaves
    the previous file); returns the line count."""
    n = 0
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            n += 1
    return n


def parse_mined_line(line: str | bytes, path: str | Path, lineno: int) -> dict:
    """One mined record, checked: qid str, positives non-empty list, candidates [[id, score]]."""
    text = utf8_line(line, path, lineno) if isinstance(line, bytes) else line
    try:
        rec = json.loads(text)
        qid, pos, cands = rec["qid"], rec["positives"], rec["candidates"]
        ok = (isinstance(qid, str) and isinstance(pos, list) and pos
              and isinstance(cands, list) and all(len(c) == 2 for c in cands))
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}:{lineno}: not a mined record: {err}") from err
    if not ok:
        raise DataError(f"{path}:{lineno}: mined record needs a str qid, a non-empty positives "
                        f"list and [[doc_id, score], ...] candidates")
    return rec


def read_mined(path: str | Path) -> Iterator[dict]:
    """Stream the records of a mined JSONL file (blank lines are skipped)."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield parse_mined_line(line, path, lineno)


def mine_split(data, *, retriever: str, depth: int, out, split: str = "train", index=None,
               cache=INDEX_CACHE, options: dict | None = None) -> dict:
    """`jaxir mine`: mine `split` of the BEIR folder `data` with `retriever` (its given `options`)
    to the JSONL file `out`, printing one summary line."""
    from jaxir.eval.beir import load_beir

    dataset = load_beir(data, split=split)
    summary = mine_hard_negatives(dataset, retriever, depth, out=out, index_dir=index, cache=cache,
                                  **(options or {}))
    print(f"mined {summary['queries']} {dataset.split} queries of {dataset.name} with "
          f"{retriever} (depth {depth}) in {summary['search_s']:.1f}s -> {out}")
    return summary
