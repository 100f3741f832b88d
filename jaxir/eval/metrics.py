"""Retrieval metrics: nDCG@k, MRR@k, Recall@k, P@k and (M)AP(@k), equal to ir_measures' defaults.

Imports NumPy and the standard library only. A run is ``{query_id: {doc_id: score}}``; qrels are
``{query_id: {doc_id: grade}}``. Each convention below was measured against ir_measures 0.4.3
(pytrec_eval 0.5 for nDCG/R/AP/RR, MS MARCO's evaluator for RR@k) and is re-checked per query in
``tests/eval/test_metrics.py``:

* Relevant means grade >= 1. Grades <= 0 are judged non-relevant: gain 0, not counted in the
  number of relevant documents.
* Ranking inside a query, for ``ndcg``, ``recall``, ``map`` and ``mrr`` without cut-off
  (trec_eval): score cast to float32, descending; ties broken by doc id *descending* (strcmp
  order, i.e. code-point order). Scores equal in float32 tie even if they differ in float64.
* Ranking for ``mrr@k`` (ir_measures routes RR@k to the MS MARCO evaluator): float64 score
  descending, ties broken by doc id *ascending*.
* ``ndcg@k`` (trec_eval ``ndcg_cut``, linear gain): DCG = sum_{r<=k} g(d_r) / log2(r + 1) with
  g = max(grade, 0); IDCG is the same sum over the query's grades sorted descending; 0 if IDCG = 0.
* ``mrr@k`` = 1 / rank of the first relevant doc within the top k, else 0.
* ``recall@k`` = |relevant in top k| / |relevant in qrels|  (0 when the query has none).
* ``map`` = sum over relevant retrieved d of precision@rank(d), divided by |relevant in qrels|.
* ``p@k`` (trec_eval ``P_k``) = |relevant in top k| / k (k even when fewer than k were retrieved).
* ``map@k`` (trec_eval ``map_cut_k``, ir_measures ``AP@k``) = ``map`` over the top k only, still
  divided by |relevant in qrels|.
* Names: one canonical name per metric (``ndcg@10``, ``p@10``, ``recall@1000``, ``map``,
  ``mrr@10``); ``parse_metric`` also takes the ir_measures and trec_eval spellings, case-
  insensitively (``nDCG@10``, ``ndcg_cut_10``, ``P@10``, ``P_10``, ``R@1000``, ``recall_1000``,
  ``MAP``, ``AP@100``, ``map_cut_100``, ``MRR@10``, ``RR@10``, ``recip_rank``): see ``METRIC_KINDS``.
* Averaging: over every query id in qrels (queries with only grade-0 rows included). A query
  missing from the run, or with an empty run, scores 0. Run queries absent from qrels are ignored.
  (BEIR's own evaluator averages over qrels ∩ run instead, which is higher when a run misses
  queries.)
* ``ignore_identical_ids`` (BEIR convention, default on): drop hits whose doc id equals the
  query id before ranking (for corpora where queries are also documents, e.g. Quora, ArguAna).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jaxir.errors import DataError, EmptyInputError

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")
# A metric name: a kind, then optionally a cut-off after '@', '_' or '.' (ir_measures 'P@10',
# trec_eval 'P_10' / 'ndcg_cut_10', trec_eval -m 'P.10').
_METRIC_RE = re.compile(r"^([a-z]+(?:_[a-z]+)*)(?:[@_.]([0-9]+))?$")


@dataclass(frozen=True)
class MetricKind:
    """One metric: its canonical kind (the name's stem), how people write it, and the spellings of
    ir_measures and trec_eval that mean it. ``cutoff``: "optional" (no cut-off: the whole run),
    "required" or "none". An alias in ``cut_aliases`` must be followed by a cut-off."""

    kind: str
    label: str
    aliases: tuple[str, ...]
    cut_aliases: tuple[str, ...] = ()
    cutoff: str = "optional"
    no_cut_aliases: tuple[str, ...] = ()


# The one table of metric names (lower case): everything that parses a name reads it.
METRIC_KINDS = (
    MetricKind("ndcg", "nDCG@K", ("ndcg",), cut_aliases=("ndcg_cut",)),
    MetricKind("p", "P@K", ("p", "precision"), cutoff="required"),
    MetricKind("recall", "R@K", ("r", "recall")),
    MetricKind("map", "MAP", ("map", "ap"), cut_aliases=("map_cut",)),
    MetricKind("mrr", "MRR@K", ("mrr", "rr"), no_cut_aliases=("recip_rank",)),
)
_BY_ALIAS = {a: (m, how) for m in METRIC_KINDS for how, names in
             (("any", m.aliases), ("cut", m.cut_aliases), ("none", m.no_cut_aliases)) for a in names}


def known_metrics() -> str:
    """The names ``parse_metric`` takes, for an error message."""
    def one(m: MetricKind) -> str:
        cut = "@K" if m.cutoff == "required" else ""
        other = ([f"{a}{cut}" for a in m.aliases if a != m.label.split("@")[0].lower()] + [f"{a}_K" for a in m.cut_aliases]
                 + list(m.no_cut_aliases))
        return m.label + (f" (also {', '.join(other)})" if other else "")

    return ("known: " + "; ".join(one(m) for m in METRIC_KINDS) + " -- any case; a cut-off K >= 1 "
            "follows @, _ or . (none: the whole run), e.g. nDCG@10 P@10 R@1000 ndcg_cut_10 recall_1000 "
            "MAP MRR@10")


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: ``kind`` in {ndcg, p, recall, map, mrr}; ``k`` None means no cut-off."""

    name: str
    kind: str
    k: int | None


def parse_metric(name: str) -> MetricSpec:
    """A metric name in any spelling of ``METRIC_KINDS`` -> its canonical spec: 'nDCG@10',
    'ndcg_cut_10' -> MetricSpec('ndcg@10', 'ndcg', 10); 'P_5' -> ('p@5', 'p', 5); 'MAP' ->
    ('map', 'map', None); 'AP@100' -> ('map@100', 'map', 100). Case-insensitive; a ValueError
    starting "unknown metric" lists the known names."""
    text = str(name).strip().lower()
    match = _METRIC_RE.match(text)
    found = _BY_ALIAS.get(match.group(1)) if match else None
    k = int(match.group(2)) if match and match.group(2) else None
    problem = None
    if found is None:
        problem = "unknown metric"
    else:
        kind, how = found
        if k == 0:
            problem = "unknown metric (a cut-off is an integer >= 1)"
        elif k is None and (how == "cut" or kind.cutoff == "required"):
            problem = f"unknown metric (it needs a cut-off, e.g. {match.group(1)}{'_' if how == 'cut' else '@'}10)"
        elif k is not None and how == "none":
            problem = "unknown metric (it takes no cut-off)"
    if problem:
        raise ValueError(f"{problem}: {name!r}; {known_metrics()}")
    kind = found[0]
    return MetricSpec(kind.kind if k is None else f"{kind.kind}@{k}", kind.kind, k)


def canonical_metrics(names: Iterable[str]) -> list[str]:
    """Canonical names of ``names`` (any spelling), in order, each once."""
    return list(dict.fromkeys(parse_metric(n).name for n in names))


def run_depth(run: Run) -> int:
    """The most hits any query of ``run`` has (0 for an empty run)."""
    return max((len(docs) for docs in run.values()), default=0)


def cutoff_of(name: str) -> int | None:
    """The cut-off of a metric name (None: the whole run)."""
    return parse_metric(name).k


def _trec_eval_order(doc_ids: list[str], scores: np.ndarray) -> list[str]:
    """trec_eval order: float32 score descending, then doc id descending."""
    order = np.lexsort((np.asarray(doc_ids), scores.astype(np.float32)))[::-1]
    return [doc_ids[i] for i in order]


def _msmarco_order(doc_ids: list[str], scores: np.ndarray) -> list[str]:
    """MS MARCO evaluator order (ir_measures RR@k): float64 score descending, doc id ascending."""
    order = np.lexsort((np.asarray(doc_ids), -scores))
    return [doc_ids[i] for i in order]


def _gains(ranked: Sequence[str], judged: Mapping[str, int]) -> np.ndarray:
    """[n] float64 gain max(grade, 0) of each ranked doc; unjudged docs gain 0."""
    return np.array([max(judged.get(d, 0), 0) for d in ranked], dtype=np.float64)


def _ndcg(gains: np.ndarray, judged: Mapping[str, int], k: int | None) -> float:
    ideal = np.sort(np.array([g for g in judged.values() if g > 0], dtype=np.float64))[::-1]
    gains, ideal = gains[:k], ideal[:k]
    if ideal.size == 0:
        return 0.0
    dcg = float(np.sum(gains / np.log2(np.arange(2, gains.size + 2))))
    idcg = float(np.sum(ideal / np.log2(np.arange(2, ideal.size + 2))))
    return dcg / idcg


def _reciprocal_rank(gains: np.ndarray, k: int | None) -> float:
    hits = np.flatnonzero(gains[:k] >= 1)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


def _recall(gains: np.ndarray, num_rel: int, k: int | None) -> float:
    return float(np.count_nonzero(gains[:k] >= 1)) / num_rel if num_rel else 0.0


def _precision(gains: np.ndarray, k: int) -> float:
    return float(np.count_nonzero(gains[:k] >= 1)) / k


def _average_precision(gains: np.ndarray, num_rel: int, k: int | None = None) -> float:
    hit_ranks = np.flatnonzero(gains[:k] >= 1) + 1  # 1-based ranks of relevant docs
    if not num_rel or hit_ranks.size == 0:
        return 0.0
    precisions = np.arange(1, hit_ranks.size + 1) / hit_ranks
    return float(np.sum(precisions)) / num_rel


def _query_scores(
    qid: str, docs: Mapping[str, float], judged: Mapping[str, int], specs: Sequence[MetricSpec]
) -> dict[str, float]:
    """All metrics of one query; ``docs`` already has identical ids removed."""
    doc_ids = list(docs)
    scores = np.fromiter((float(s) for s in docs.values()), np.float64, len(doc_ids))
    if np.isnan(scores).any():
        raise DataError(f"run for query {qid!r} has NaN scores")
    num_rel = sum(1 for g in judged.values() if g >= 1)
    trec_gains = _gains(_trec_eval_order(doc_ids, scores), judged)
    needs_msmarco = any(s.kind == "mrr" and s.k is not None for s in specs)
    msmarco_gains = _gains(_msmarco_order(doc_ids, scores), judged) if needs_msmarco else None
    out = {}
    for spec in specs:
        if spec.kind == "ndcg":
            out[spec.name] = _ndcg(trec_gains, judged, spec.k)
        elif spec.kind == "mrr":
            gains = trec_gains if spec.k is None else msmarco_gains
            out[spec.name] = _reciprocal_rank(gains, spec.k)
        elif spec.kind == "recall":
            out[spec.name] = _recall(trec_gains, num_rel, spec.k)
        elif spec.kind == "p":
            out[spec.name] = _precision(trec_gains, spec.k)
        else:
            out[spec.name] = _average_precision(trec_gains, num_rel, spec.k)
    return out


def evaluate(
    run: Run,
    qrels: Qrels,
    *,
    metrics: Iterable[str] = DEFAULT_METRICS,
    ignore_identical_ids: bool = True,
    per_query: bool = False,
) -> dict[str, float] | tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean of each metric over the query ids of ``qrels`` (see the module docstring).

    Returns ``{metric_name: mean}``; with ``per_query=True`` returns ``(means, per_query)`` where
    ``per_query[qid][metric_name]`` is that query's value, queries in qrels order. Metric names
    are lower-cased ('nDCG@10' -> 'ndcg@10').
    """
    specs = list({s.name: s for s in map(parse_metric, metrics)}.values())
    if not specs:
        raise ValueError("metrics is empty")
    if not qrels:
        raise EmptyInputError("qrels has no queries: nothing to average over")
    rows = {}
    for qid, judged in qrels.items():
        docs = run.get(qid) or {}
        if ignore_identical_ids and qid in docs:
            docs = {d: s for d, s in docs.items() if d != qid}
        rows[qid] = _query_scores(qid, docs, judged, specs)
    means = {s.name: math.fsum(r[s.name] for r in rows.values()) / len(rows) for s in specs}
    return (means, rows) if per_query else means
