"""Cross-encoder reranking: load a trained reranker, rerank a first stage's top `depth`, evaluate.

A reranker checkpoint is the engine's checkpoint format (``Checkpointer``) holding
``{"params": ...}`` with the model description (method, CrossEncoderConfig, BertConfig) as its
config; restoring checks the method and the param tree and raises ``CheckpointError`` otherwise.

Reranked run for one query with first-stage hits h_1..h_k (best first):
    h_1..h_depth       ordered by the cross-encoder (or interpolated) score
    h_depth+1..h_k     keep their first-stage order, all below the reranked ones
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxir.errors import CheckpointError
from jaxir.methods.cross_encoder import (METHOD, CrossEncoder, CrossEncoderConfig, PairScorer,
                                         bert_config_from_dict, interpolate)
from jaxir.training.checkpoint import Checkpointer

EXPORT_DIR = "reranker"  # inside a training output folder


class CrossEncoderReranker:
    """A CrossEncoder with trained params; ``rerank(query, doc_texts) -> scores [n]``."""

    def __init__(self, model: CrossEncoder, params):
        self.model, self.params = model, params
        self.config: CrossEncoderConfig = model.config
        self._scorer = PairScorer(model, params)

    def save(self, directory: str | Path) -> Path:
        ckpt = Checkpointer(directory, config=self.model.description(), keep=1)
        ckpt.save(0, {"params": self.params}, data_state={})
        ckpt.close()
        return Path(directory)

    @classmethod
    def load(cls, ckpt_dir: str | Path, *, alpha: float | None = None,
             rerank_batch_size: int | None = None) -> "CrossEncoderReranker":
        """Restore from an exported reranker folder (or a training folder holding ``reranker/``).

        ``alpha``/``rerank_batch_size`` override the saved rerank-time settings.
        """
        path = Path(ckpt_dir)
        if (path / EXPORT_DIR).is_dir():
            path = path / EXPORT_DIR
        if not path.is_dir():
            raise CheckpointError(f"no reranker checkpoint folder at {path}")
        probe = Checkpointer(path, config={})
        step = probe.latest_step()
        if step is None:
            raise CheckpointError(f"no checkpoint found in {path}")
        saved = probe.read_meta(step).get("config", {})
        probe.close()
        if saved.get("method") != METHOD:
            raise CheckpointError(f"checkpoint {path} is not a {METHOD} reranker "
                                  f"(method={saved.get('method')!r})")
        try:
            config = CrossEncoderConfig(**saved["model"])
            bert_config = bert_config_from_dict(saved["bert"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint {path}: unreadable model config: {err}") from err
        model = CrossEncoder(config, bert_config=bert_config)
        params = _restore_params(path, saved, model)
        overrides = {k: v for k, v in (("alpha", alpha), ("rerank_batch_size", rerank_batch_size))
                     if v is not None}
        if overrides:
            model.config = dataclasses.replace(config, **overrides)
        return cls(model, params)

    def rerank(self, query: str, doc_texts: Sequence[str], *,
               first_stage_scores: Sequence[float] | None = None) -> np.ndarray:
        """Scores [n] for the documents (higher is better), interpolated when config.alpha is set."""
        return self.rerank_many([query], [doc_texts], [first_stage_scores])[0]

    def scores(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]], *,
               desc: str | None = None) -> list[np.ndarray]:
        """Raw cross-encoder scores, per query [n_q]; batched across queries (length buckets).

        desc: label of a progress bar over pair batches (None: no bar).
        """
        return self._scorer.score_texts(queries, doc_lists, desc=desc)

    def rerank_many(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]],
                    first_stage: Sequence | None = None) -> list[np.ndarray]:
        """Per query scores [n_q]: raw, or interpolated with ``first_stage`` when alpha is set."""
        scores = self.scores(queries, doc_lists)
        alpha = self.config.alpha
        if alpha is None:
            return scores
        if first_stage is None or any(f is None for f in first_stage):
            raise ValueError("alpha is set: pass the first-stage scores of every query")
        return [interpolate(s, np.asarray(f, np.float32), alpha) for s, f in zip(scores, first_stage)]


def _restore_params(path: Path, saved: dict, model: CrossEncoder):
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    target = {"params": jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)}
    ckpt = Checkpointer(path, config=saved)
    try:
        state, _ = ckpt.restore(target)
    finally:
        ckpt.close()
    return state["params"]


def rerank_run(run: dict[str, dict[str, float]], queries: dict[str, str], corpus_text,
               reranker: CrossEncoderReranker, depth: int, *, chunk: int = 16,
               progress: bool = True) -> dict[str, dict[str, float]]:
    """Rerank each query's top ``depth`` hits; the rest keep first-stage order below them."""
    out = {}
    qids = list(run)
    for start in tqdm(range(0, len(qids), chunk), desc="rerank", disable=not progress, leave=False):
        part = qids[start:start + chunk]
        ranked = [sorted(run[q].items(), key=lambda x: (-x[1], x[0])) for q in part]
        heads = [r[:depth] for r in ranked]
        scores = reranker.rerank_many([queries[q] for q in part],
                                      [[corpus_text(d) for d, _ in h] for h in heads],
                                      [[s for _, s in h] for h in heads])
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


def eval_rerank(data: str | Path, split: str = "test", *, first_stage: str = "bm25",
                depth: int = 100, checkpoint: str | Path, alpha: float | None = None,
                k: int = 100, index_dir: Path | None = None, cache: Path = Path("runs/indexes"),
                run_path: Path | None = None, output_json: Path | None = None,
                progress: bool = True) -> dict:
    """First stage (built or reused like ``eval_method``) -> cross-encoder over its top ``depth``."""
    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.runs import write_trec
    from jaxir.pipeline.evaluate import (DEFAULT_METRICS, build_or_reuse, default_index_dir,
                                         run_search)
    from jaxir.pipeline.retrievers import get_retriever

    dataset = load_beir(data, split=split)
    retriever = get_retriever(first_stage)
    index_dir = Path(index_dir) if index_dir else default_index_dir(Path(cache), dataset, retriever)
    index_dir, build_s = build_or_reuse(retriever, dataset, index_dir)
    t = time.perf_counter()
    searcher = retriever.open(index_dir)
    reranker = CrossEncoderReranker.load(checkpoint, alpha=alpha)
    open_s = time.perf_counter() - t
    first_run, first_timing = run_search(searcher, dataset.queries, max(k, depth))
    t = time.perf_counter()
    run = rerank_run(first_run, dataset.queries, dataset.text_of, reranker,
                     depth, progress=progress)
    rerank_s = time.perf_counter() - t
    if run_path:
        write_trec(run_path, run, tag=f"jaxir-{METHOD}")
    n = max(len(dataset.queries), 1)
    result = {
        "dataset": dataset.name, "split": split, "method": METHOD,
        "num_queries": len(dataset.queries),
        "metrics": {m: float(v) for m, v in evaluate(run, dataset.qrels, metrics=DEFAULT_METRICS).items()},
        "timing": {"index_build_s": build_s, "open_s": open_s,
                   "first_stage_s": first_timing["search_s"], "rerank_s": rerank_s,
                   "search_s": first_timing["search_s"] + rerank_s,
                   "ms_per_query": 1000 * (first_timing["search_s"] + rerank_s) / n},
        "index": str(index_dir),
        "rerank": {"first_stage": first_stage, "depth": depth, "alpha": reranker.config.alpha,
                   "checkpoint": str(checkpoint)},
    }
    if output_json:
        Path(output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(output_json).write_text(json.dumps(result, indent=2) + "\n")
    return result
