"""Hard-negative mining: rank the corpus for every training query with a first-stage retriever.

Output: JSONL, one line per query that has at least one positive (qrels grade > 0)::

    {"qid": "q1", "positives": ["d7"], "candidates": [["d3", 12.5], ["d9", 11.0], ...]}

``candidates`` are the retriever's top ``depth`` documents that are NOT positives, best first,
with their first-stage scores. Judged non-relevant documents (grade <= 0) stay candidates.
The file is written to a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from jaxir.errors import DataError
from jaxir.fs import INDEX_CACHE, atomic_output


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
    from jaxir.retrievers.built_from import index_for
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
    n = write_mined(out, records)
    return {"queries": n, "skipped_without_positive": len(dataset.queries) - len(queries),
            "depth": depth, "retriever": retriever_name,
            "options": {k: str(v) for k, v in retriever_options.items() if v is not None},
            "index": str(index_dir),
            "index_build_s": build_s, "search_s": time.perf_counter() - t, "out": str(out)}


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
    try:
        rec = json.loads(line)
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


def main_mine(args, options: dict | None = None) -> dict:
    """CLI entry: ``jaxir mine --retriever R [--checkpoint CKPT ...] --depth N --data BEIR_DIR
    --out FILE [--split train]``; `options` are R's given options (`jaxir.cli` parses them)."""
    from jaxir.eval.beir import load_beir

    dataset = load_beir(args.data, split=getattr(args, "split", None) or "train")
    summary = mine_hard_negatives(dataset, args.retriever, args.depth, out=args.out,
                                  index_dir=getattr(args, "index", None),
                                  cache=getattr(args, "cache", None) or INDEX_CACHE,
                                  **(options or {}))
    print(f"mined {summary['queries']} {dataset.split} queries of {dataset.name} with "
          f"{args.retriever} (depth {args.depth}) in {summary['search_s']:.1f}s -> {args.out}")
    return summary
