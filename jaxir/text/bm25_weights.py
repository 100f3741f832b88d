"""BM25's term weights as NumPy functions: shared by the BM25 index and the learned-sparse lexical prior."""
from __future__ import annotations

import numpy as np

DEFAULT_K1, DEFAULT_B = 1.5, 0.75  # bm25s's defaults


def tf_saturation(tf, doc_len, *, avgdl: float, k1: float, b: float) -> np.ndarray:
    """The document side of BM25 [P] float64: tf / (tf + k1 · (1 - b + b · dl / avgdl))."""
    tf, doc_len = np.asarray(tf, np.float64), np.asarray(doc_len, np.float64)
    return tf / (tf + k1 * (1.0 - b + b * doc_len / avgdl))


def lucene_weights(tf, doc_len, df, *, n_docs: int, avgdl: float, k1: float, b: float) -> np.ndarray:
    """Per-posting weights [P] float64 from tf [P], the posting's doc length [P] and term df [P]."""
    df = np.asarray(df, np.float64)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    return idf * tf_saturation(tf, doc_len, avgdl=avgdl, k1=k1, b=b)
