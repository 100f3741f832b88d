"""Max abs difference between jaxir's encodings of a checkpoint and a peer library's (the npz
written by benchmarks/interop_peer.py): the number the parity tests and table report."""
from __future__ import annotations

import numpy as np


def colbert_encodings(model, params, texts: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """(queries [Nq, Lq, dim], per document the kept token vectors) of texts {"queries", "docs"}."""
    q = model.encode_query_texts(params, texts["queries"], progress=False)
    return q, model.encode_doc_texts(params, texts["docs"], progress=False)


def colbert_max_diff(model, params, texts: dict, peer: dict) -> float:
    """max |jaxir - peer| over every query and kept document vector; inf if shapes differ."""
    q, docs = colbert_encodings(model, params, texts)
    pairs = [(q, peer["q"])] + [(d, peer[f"d_{i}"]) for i, d in enumerate(docs)]
    if any(a.shape != b.shape for a, b in pairs):
        return float("inf")
    return max(float(np.max(np.abs(a - b))) for a, b in pairs)
