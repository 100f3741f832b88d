"""Token-vector cache for the PLAID benchmark: encode SciFact (or a subset) once, reuse it.

Both engines index exactly these vectors, so the benchmark compares engines, not encoders.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def select_subset(data, max_docs: int | None, max_queries: int | None, seed: int = 0):
    """(doc ids, doc texts, query ids, query texts); a doc subset keeps the judged docs of the
    chosen queries and fills up with a seeded sample of the rest (corpus order kept)."""
    qids = data.query_ids[:max_queries] if max_queries else data.query_ids
    doc_ids, texts = data.doc_ids, data.doc_texts()
    if max_docs and max_docs < len(doc_ids):
        judged = {d for q in qids for d in data.qrels[q]}
        others = [d for d in doc_ids if d not in judged]
        fill = np.random.default_rng(seed).choice(len(others), max(0, max_docs - len(judged)),
                                                  replace=False)
        keep = judged | {others[i] for i in fill}
        rows = [i for i, d in enumerate(doc_ids) if d in keep]
        doc_ids, texts = [doc_ids[i] for i in rows], [texts[i] for i in rows]
    return doc_ids, texts, qids, [data.queries[q] for q in qids]


def encode(texts, query_texts, *, random: bool, batch_size: int):
    """-> (list of [n_i, D] float32 doc matrices, [Q, Lq, D] float32 queries, fingerprint)."""
    if random:  # plumbing stand-in: random unit vectors, no model
        rng = np.random.default_rng(0)
        unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
        docs = [unit(rng.normal(size=(n, 128))) for n in rng.integers(8, 96, len(texts))]
        return docs, unit(rng.normal(size=(len(query_texts), 32, 128))), "random-unit-vectors"
    import jax

    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    model = ColBERTModel(ColBERTConfig(batch_size=batch_size))
    params = model.init(jax.random.PRNGKey(model.config.seed))
    queries = model.encode_query_texts(params, query_texts)
    return model.encode_doc_texts(params, texts), queries, model.fingerprint(params)


def ensure_cache(args) -> Path:
    """Encode once per (data, subset, encoder); later runs reuse the .npy files."""
    spec = {"data": str(args.data.resolve()), "split": "test", "max_docs": args.max_docs,
            "max_queries": args.max_queries, "encoder": "random" if args.random else "colbert"}
    subset = f"d{args.max_docs or 'all'}-q{args.max_queries or 'all'}"
    folder = args.cache / f"{args.data.name}-{subset}-{spec['encoder']}"
    meta_file = folder / "meta.json"
    if meta_file.is_file() and json.loads(meta_file.read_text())["spec"] == spec:
        return folder
    from jaxir.eval.beir import load_beir

    doc_ids, texts, qids, qtexts = select_subset(load_beir(args.data, "test"), args.max_docs,
                                                 args.max_queries)
    start = time.perf_counter()
    docs, queries, fingerprint = encode(texts, qtexts, random=args.random,
                                        batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "doc_tokens.npy", np.concatenate(docs).astype(np.float32))
    np.save(folder / "doclens.npy", np.array([len(d) for d in docs], np.int32))
    np.save(folder / "queries.npy", np.asarray(queries, np.float32))
    (folder / "ids.json").write_text(json.dumps({"doc_ids": doc_ids, "query_ids": qids}))
    meta_file.write_text(json.dumps({"spec": spec, "fingerprint": fingerprint,
                                     "encode_s": seconds}, indent=1))
    return folder
