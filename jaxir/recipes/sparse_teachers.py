"""Teachers of the learned-sparse recipe: candidate mining and dense + BM25 teacher scores.

`mine_candidates` takes the recipe's data config (max_queries, mine_depth, n_negatives).
"""
from __future__ import annotations

import numpy as np


class TeacherScores:
    """Teacher scores of the train queries against any corpus docs: (dense cosine, BM25).

    bm25: BM25Index over the corpus; dense: DenseRetriever (encodes the queries once); flat:
    FlatIndex of the same dense model's corpus vectors (doc ids = corpus ids). Scoring on demand
    lets in-batch negatives get teacher scores for any pair a batch happens to form.
    """

    def __init__(self, queries: list[str], *, bm25, dense, flat):
        self.queries, self.bm25, self.flat = queries, bm25, flat
        self.q_emb = dense.encode(queries, desc="teacher: encode queries", what="query", progress=False)
        self.dense_row = {d: i for i, d in enumerate(flat.doc_ids.tolist())}
        self.bm25_row = {d: i for i, d in enumerate(bm25.doc_ids.tolist())}

    def __call__(self, query: int, doc_ids: list[str]) -> np.ndarray:
        """[2, len(doc_ids)] scores of train query number `query`."""
        vectors = np.asarray(self.flat.embeddings[[self.dense_row[d] for d in doc_ids]], np.float32)
        bm25 = self.bm25.score_all(self.queries[query])[[self.bm25_row[d] for d in doc_ids]]
        return np.stack([vectors @ self.q_emb[query], bm25]).astype(np.float32)


def dense_corpus(data, dense, index_dir: str | None):
    """FlatIndex of the dense teacher's corpus vectors: loaded from `index_dir` (a `jaxir index
    --method dense` folder of this corpus, model fingerprint checked) or encoded now (285 s for SciFact on CPU)."""
    from jaxir.index.flat import FlatIndex

    if index_dir:
        from jaxir.errors import IndexFormatError
        from jaxir.retrievers.built_from import corpus_mismatch

        why = corpus_mismatch(index_dir, data)
        if why is not None:
            raise IndexFormatError(f"--data.dense_index: {why}")
        return FlatIndex.load(index_dir, model_fingerprint=dense.fingerprint)
    emb = dense.encode(data.doc_texts(), desc="dense teacher: encode corpus", what="document")
    return FlatIndex(emb, np.asarray(data.doc_ids, dtype=str))


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
