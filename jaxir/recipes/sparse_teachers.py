"""Teachers of the learned-sparse recipe: candidate mining and teacher scores.

Teachers are any first-stage retrievers of the registry (`jaxir.retrievers`), each named
"METHOD" or "METHOD:CHECKPOINT" (e.g. "dense", "bm25", "i3:runs/plain-scifact/i3",
"splade:runs/splade-scifact/splade"): each scores every train query against the whole corpus once
(its index built in, or reused from, the index cache), so in-batch negatives get a teacher score
for any pair a batch happens to form. A sparse teacher gives 0 to a document sharing no term with
the query, which is its score. `mine_candidates` takes the recipe's data config (max_queries,
mine_depth, n_negatives) and mines with BM25 and dense MiniLM, whatever the teachers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxir.fs import INDEX_CACHE

# The teachers of the paper's recipe as the CPU recipes first ran it: MiniLM dense + BM25.
DEFAULT_TEACHERS = ("dense", "bm25")


class TeacherScores:
    """Teacher scores of the train queries against any corpus docs: teacher(query, doc_ids) ->
    [n_teachers, len(doc_ids)], from per-teacher [Q, N] matrices over the corpus `doc_ids`."""

    def __init__(self, queries: list[str], doc_ids, matrices: list[np.ndarray], names=()):
        self.queries, self.names = queries, tuple(names)
        self.scores = np.stack(matrices, axis=1).astype(np.float32)  # [Q, T, N]
        self.column = {d: j for j, d in enumerate(doc_ids)}
        if self.scores.shape[::2] != (len(queries), len(self.column)):
            raise ValueError(f"teacher scores {self.scores.shape} for {len(queries)} queries x "
                             f"{len(self.column)} docs")

    def __call__(self, query: int, doc_ids: list[str]) -> np.ndarray:
        """[n_teachers, len(doc_ids)] scores of train query number `query`."""
        return self.scores[query][:, [self.column[d] for d in doc_ids]]


def parse_teacher(spec: str) -> tuple[str, dict]:
    """"METHOD" or "METHOD:CHECKPOINT" -> (registry method, its options)."""
    from jaxir.errors import OptionError
    from jaxir.retrievers.registry import first_stage_methods

    name, _, checkpoint = spec.partition(":")
    if name not in first_stage_methods():
        raise OptionError(f"teacher {spec!r}: {name!r} is not a first-stage method; choose from "
                          f"{first_stage_methods()} (METHOD or METHOD:CHECKPOINT)")
    return name, ({"checkpoint": checkpoint} if checkpoint else {})


def corpus_scores(spec: str, data, queries: list[str], cache: str | Path = INDEX_CACHE) -> np.ndarray:
    """[Q, N] scores of `queries` against every document of `data` (in data.doc_ids order) by the
    teacher `spec`, searched through its registry index (built once, then reused from `cache`)."""
    from jaxir.pipeline.built_from import index_for
    from jaxir.retrievers.registry import get_retriever

    name, options = parse_teacher(spec)
    retriever = get_retriever(name, **options)
    index_dir, _ = index_for(retriever, data, None, Path(cache))
    column = {d: j for j, d in enumerate(data.doc_ids)}
    out = np.zeros((len(queries), len(column)), np.float32)
    for i, (ids, scores) in enumerate(retriever.open(index_dir).search(queries, len(column))):
        out[i, [column[d] for d in ids]] = scores
    return out


def teacher_scores(specs, data, queries: list[str], cache: str | Path = INDEX_CACHE) -> TeacherScores:
    """The recipe's teachers (`SparseData.teachers`) over the corpus, one [Q, N] matrix each."""
    return TeacherScores(queries, data.doc_ids, [corpus_scores(s, data, queries, cache) for s in specs],
                         names=specs)


def dense_corpus(data, dense, index_dir: str | None, cache: str | Path = INDEX_CACHE):
    """FlatIndex of the dense MiniLM's corpus vectors: loaded from `index_dir` (a `jaxir index
    --method dense` folder of this corpus, model fingerprint checked) or from the index cache,
    where the "dense" teacher finds the same index (built once: 285 s for SciFact on CPU)."""
    from jaxir.index.flat import FlatIndex
    from jaxir.pipeline.built_from import index_for
    from jaxir.retrievers.registry import get_retriever

    if index_dir:
        from jaxir.errors import IndexFormatError
        from jaxir.pipeline.built_from import corpus_mismatch

        why = corpus_mismatch(index_dir, data)
        if why is not None:
            raise IndexFormatError(f"--data.dense_index: {why}")
    else:
        index_dir, _ = index_for(get_retriever("dense"), data, None, Path(cache))
    return FlatIndex.load(index_dir, model_fingerprint=dense.fingerprint)


def mine_candidates(data, cfg, bm25, dense, flat) -> tuple[list[str], list[str], list[list[str]]]:
    """(query ids, query texts, [positive, negatives...] doc ids) per train query that has
    cfg.n_negatives negatives (the others are dropped).

    Negatives interleave the BM25 and dense rankings (top `mine_depth` each), skipping judged docs.
    """
    from jaxir.data.mine import positives_of

    qids = [q for q, rel in data.qrels.items() if positives_of(rel, data.corpus)]
    if cfg.max_queries:
        qids = qids[: cfg.max_queries]
    queries = [data.queries[q] for q in qids]
    dense_ids, _ = flat.search(dense.encode(queries, what="query", progress=False), cfg.mine_depth)
    kept_ids, kept_q, rows = [], [], []
    for qid, query, d_ids in zip(qids, queries, dense_ids):
        rel = data.qrels[qid]
        b_ids, _ = bm25.search(query, cfg.mine_depth)
        merged = [d for pair in zip(b_ids, d_ids) for d in pair] + list(b_ids) + list(d_ids)
        negatives = list(dict.fromkeys(d for d in merged if d not in rel))[: cfg.n_negatives]
        if len(negatives) == cfg.n_negatives:
            kept_ids.append(qid)
            kept_q.append(query)
            rows.append([positives_of(rel, data.corpus)[0], *negatives])
    return kept_ids, kept_q, rows
