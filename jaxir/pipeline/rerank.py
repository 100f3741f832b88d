"""Reranking a first stage's run with any registered reranker, and evaluating it on BEIR.

Reranked run for one query with first-stage hits h_1..h_k (best first):
    h_1..h_depth       ordered by the reranker's (or interpolated) score
    h_depth+1..h_k     keep their first-stage order, all below the reranked ones
"""
from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from jaxir.pipeline.built_from import index_for
from jaxir.pipeline.search import note_reused, run_search
from jaxir.retrievers.registry import get_retriever


def rerank_run(run: dict[str, dict[str, float]], queries: dict[str, str], corpus_text,
               reranker, depth: int, *, chunk: int = 16,
               progress: bool = True) -> dict[str, dict[str, float]]:
    """Rerank each query's top ``depth`` hits; the rest keep first-stage order below them.

    reranker: anything with ``rerank_many(queries, doc_lists, first_stage_scores)``; documents
    are passed as texts and, for rerankers that keep per-document state, as ids
    (``doc_ids=`` when its ``takes_doc_ids`` is true).
    """
    out = {}
    qids = list(run)
    by_id = getattr(reranker, "takes_doc_ids", False)
    for start in tqdm(range(0, len(qids), chunk), desc="rerank", disable=not progress, leave=False):
        part = qids[start:start + chunk]
        ranked = [sorted(run[q].items(), key=lambda x: (-x[1], x[0])) for q in part]
        heads = [r[:depth] for r in ranked]
        docs = [[d for d, _ in h] for h in heads] if by_id else [[corpus_text(d) for d, _ in h] for h in heads]
        scores = reranker.rerank_many([queries[q] for q in part], docs, [[s for _, s in h] for h in heads])
        for q, r, h, s in zip(part, ranked, heads, scores):
            out[q] = merge_reranked(r, h, s)
    return out


def merge_reranked(ranked, head, head_scores) -> dict[str, float]:
    """Reranked head scores, then the tail at strictly lower, first-stage-ordered scores."""
    merged = {d: float(s) for (d, _), s in zip(head, head_scores)}
    floor = min(merged.values(), default=0.0)
    for i, (d, _) in enumerate(ranked[len(head):], start=1):
        merged[d] = floor - i
    return merged


def rerank_dataset(method, dataset, *, first_stage: str, depth: int, k: int,
                   first_stage_index: Path | None, cache: Path, index_dir: Path | None,
                   progress: bool = True, given=(), allow_corpus_mismatch: bool = False) -> tuple[dict, dict, dict]:
    """(run, timing, info): first stage (built or reused) -> `method`'s reranker over its top
    `depth`. `method` is a configured reranker from the registry; `index_dir` its own index
    (built or reused when it has an index kind, e.g. stored document states), checked against
    the option names in `given`."""
    first = get_retriever(first_stage)
    first_dir, build_s = index_for(first, dataset, first_stage_index, cache,
                                   allow_corpus_mismatch=allow_corpus_mismatch)
    note_reused(first.name, first_dir, build_s)
    own = None
    if getattr(method, "index_kind", None):
        own, own_s = index_for(method, dataset, index_dir, cache, given=given,
                               allow_corpus_mismatch=allow_corpus_mismatch)
        note_reused(method.name, own, own_s)
        build_s += own_s
    t = time.perf_counter()
    searcher, reranker = first.open(first_dir), method.open_reranker(own)
    open_s = time.perf_counter() - t
    first_run, first_timing = run_search(searcher, dataset.queries, max(k, depth))
    t = time.perf_counter()
    run = rerank_run(first_run, dataset.queries, dataset.text_of, reranker, depth, progress=progress)
    rerank_s = time.perf_counter() - t
    n = max(len(dataset.queries), 1)
    timing = {"index_build_s": build_s, "open_s": open_s, "first_stage_s": first_timing["search_s"],
              "rerank_s": rerank_s, "search_s": first_timing["search_s"] + rerank_s,
              "ms_per_query": 1000 * (first_timing["search_s"] + rerank_s) / n}
    info = {"index": str(own or first_dir),
            "rerank": {"first_stage": first_stage, "first_stage_index": str(first_dir), "depth": depth,
                       **reranker.describe()}}
    return run, timing, info
