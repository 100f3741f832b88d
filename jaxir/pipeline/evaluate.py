"""Index (or reuse), search or rerank, and score a BEIR split: the engine behind `jaxir eval` and `demo`."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from jaxir.eval.beir import load_beir
from jaxir.eval.metrics import evaluate
from jaxir.eval.runs import write_trec
from jaxir.eval.score import rounded, text_table, within_depth
from jaxir.fs import INDEX_CACHE, write_text
from jaxir.pipeline.built_from import index_for
from jaxir.pipeline.rerank import rerank_dataset
from jaxir.pipeline.search import note_reused, run_search
from jaxir.retrievers.registry import get_retriever, is_reranker

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")


@dataclasses.dataclass(frozen=True)
class IndexSource:
    """Where the evaluated method's index comes from: the folder `index_dir` (built there, or
    reused when it matches) or, without one, the cache folder `cache`. An index built from another
    corpus is refused unless `allow_corpus_mismatch` (then it warns)."""

    index_dir: Path | None = None
    cache: Path = Path(INDEX_CACHE)
    allow_corpus_mismatch: bool = False


@dataclasses.dataclass(frozen=True)
class FirstStage:
    """A reranker's candidates: the top `depth` of `method` (its index: `index_dir`, or the
    evaluated method's cache)."""

    method: str = "bm25"
    depth: int = 100
    index_dir: Path | None = None


def _search_dataset(retriever, dataset, *, k, index_dir, cache, given, allow_corpus_mismatch):
    index_dir, build_s = index_for(retriever, dataset, index_dir, Path(cache), given=given,
                                   allow_corpus_mismatch=allow_corpus_mismatch)
    note_reused(retriever.name, index_dir, build_s)
    t = time.perf_counter()
    searcher = retriever.open(index_dir)
    open_s = time.perf_counter() - t
    run, timing = run_search(searcher, dataset.queries, k)
    info = {"index": str(index_dir)}
    if hasattr(searcher, "stats"):  # e.g. learned sparse: non-zeros per doc, postings per query
        info["index_stats"] = searcher.stats([dataset.queries[q] for q in sorted(dataset.queries)])
    return run, {"index_build_s": build_s, "open_s": open_s, **timing}, info


def eval_method(method: str, data: str | Path, *, split: str = "test", k: int = 100,
                metrics=DEFAULT_METRICS, index: IndexSource = IndexSource(),
                first_stage: FirstStage = FirstStage(), run_path: Path | None = None,
                output_json: Path | None = None, progress: bool = True, **options) -> dict:
    """Evaluate a registered method (configured by its retriever `options`) on a BEIR split. A
    first-stage method builds/reuses its index (`index`) and searches it; a reranker rescores the
    `first_stage`'s top candidates. An index given by folder must be of this corpus and agree with
    the `options` given (`jaxir.pipeline.built_from`). Only the `metrics` whose cut-off the run
    reaches are scored (`k` hits, a reranker's max(k, depth)): no recall@100 for a k = 10 run."""
    dataset = load_beir(data, split=split)
    retriever = get_retriever(method, **options)
    where = dict(index_dir=index.index_dir, given=set(options), allow_corpus_mismatch=index.allow_corpus_mismatch)
    if is_reranker(method):
        run, timing, info = rerank_dataset(retriever, dataset, first_stage=first_stage.method,
                                           depth=first_stage.depth, k=k, first_stage_index=first_stage.index_dir,
                                           cache=Path(index.cache), progress=progress, **where)
    else:
        run, timing, info = _search_dataset(retriever, dataset, k=k, cache=index.cache, **where)
    if run_path:
        write_trec(run_path, run, tag=f"jaxir-{method}")
    run_k = max(k, first_stage.depth) if is_reranker(method) else k
    # A run that holds the whole corpus reaches every cut-off.
    reach = run_k if run_k < len(dataset.doc_ids) else float("inf")
    result = {
        "dataset": dataset.name, "split": split, "method": method,
        "num_queries": len(dataset.queries), "k": run_k,
        "metrics": {m: float(v) for m, v in
                    evaluate(run, dataset.qrels, metrics=within_depth(metrics, reach)).items()},
        "timing": rounded(timing), **info,
    }
    if output_json:
        write_text(output_json, json.dumps(result, indent=2) + "\n")
    return result


def format_table(results: list[dict], metrics=None) -> str:
    """A table for people, one row per result, as wide as its contents: the metrics every result
    has in order (`metrics`: those; one a result lacks, e.g. past its run's depth, is "n/a")."""
    if metrics is None:
        metrics = list(dict.fromkeys(m for r in results for m in r["metrics"]))
    return text_table(["dataset", "method", *metrics, "ms/query"],
                      [[r["dataset"], r["method"], *(r["metrics"].get(m) for m in metrics),
                        f"{r['timing']['ms_per_query']:.2f}"] for r in results])


def format_timing(timing: dict) -> str:
    """One line for people: each stage's seconds, then ms per query."""
    parts = ["index reused" if key == "index_build_s" and not value else f"{key[:-2].replace('_', ' ')} {value:.2f} s"
             for key, value in timing.items() if key.endswith("_s") and key != "search_s"]
    search = timing.get("search_s")
    if search is not None:
        parts.append(f"search {search:.2f} s ({timing['ms_per_query']:.2f} ms/query)")
    return "timing: " + ", ".join(parts)
