"""Streaming PLAID index construction (NumPy only): compressed batches in, a `PlaidIndex` out.

It sits above `plaid` (it builds that module's index); `plaid_update` sits above both."""
from __future__ import annotations

import numpy as np

from .codec import ResidualCodec
from .plaid import PlaidIndex


class PlaidIndexBuilder:
    """Streams documents into a `PlaidIndex`; only compressed data is held between batches.

    Usage: b = PlaidIndexBuilder(codec); b.add([emb_0, emb_1, ...], doc_ids); index = b.finish()
    where emb_d is doc d's [n_tok, D] float32 unit token vectors (n_tok may be 0).
    """

    def __init__(self, codec: ResidualCodec):
        self.codec = codec
        self._codes, self._residuals, self._doclens, self._ids = [], [], [], []
        self._ivf_codes, self._ivf_docs = [], []  # unique (code, doc) pairs per batch
        self.num_docs = 0

    @property
    def nbytes(self) -> int:
        """Bytes held so far (compressed tokens + IVF pairs + doc lengths)."""
        parts = (self._codes, self._residuals, self._doclens, self._ivf_codes, self._ivf_docs)
        return sum(int(a.nbytes) for group in parts for a in group)

    def add(self, docs, doc_ids=None) -> None:
        """Compress one batch: docs = sequence of [n_tok, D] arrays; doc_ids = sequence of str."""
        docs = [np.asarray(d, np.float32) for d in docs]
        for i, d in enumerate(docs):
            if d.ndim != 2 or d.shape[1] != self.codec.dim:
                raise ValueError(f"doc {self.num_docs + i} embeddings must be [n_tok, "
                                 f"{self.codec.dim}], got {d.shape}")
        lens = np.array([len(d) for d in docs], np.int32)
        if lens.sum():
            codes, packed = self.codec.compress(np.concatenate(docs))
        else:
            codes = np.zeros(0, np.int32)
            packed = np.zeros((0, self.codec.dim * self.codec.nbits // 8), np.uint8)
        self.add_compressed(codes, packed, lens, doc_ids)

    def add_compressed(self, codes: np.ndarray, packed: np.ndarray, doclens: np.ndarray,
                       doc_ids=None) -> None:
        """Append a batch compressed elsewhere: codes [t], packed [t, P], doclens [n].

        The index build's path: `jaxir.ops.residual.compress` with this codec's centroids and
        cutoffs on the encoder's device (`jaxir.retrievers.colbert_build.DeviceCompressor`).
        """
        codes = np.asarray(codes, np.int32)
        packed = np.asarray(packed, np.uint8)
        lens = np.asarray(doclens, np.int32)
        n = len(lens)
        width = self.codec.dim * self.codec.nbits // 8
        if int(lens.sum()) != len(codes) or packed.shape != (len(codes), width):
            raise ValueError(f"batch at doc {self.num_docs}: doclens sum {int(lens.sum())}, codes "
                             f"{codes.shape}, packed {packed.shape} (expected [t, {width}])")
        if doc_ids is not None and len(doc_ids) != n:
            raise ValueError(f"{len(doc_ids)} doc ids for {n} documents at doc {self.num_docs}")
        if len(codes) and not 0 <= codes.min() <= codes.max() < len(self.codec.centroids):
            raise ValueError(f"batch at doc {self.num_docs}: codes outside [0, "
                             f"{len(self.codec.centroids)})")
        # One (code, doc) pair per distinct code of a document; sorted by code, then doc.
        local = np.repeat(np.arange(n, dtype=np.int64), lens)
        keys = np.unique(codes.astype(np.int64) * max(n, 1) + local)
        self._ivf_codes.append((keys // max(n, 1)).astype(np.int32))
        self._ivf_docs.append((keys % max(n, 1) + self.num_docs).astype(np.int32))
        self._codes.append(codes)
        self._residuals.append(packed)
        self._doclens.append(lens)
        ids = doc_ids if doc_ids is not None else range(self.num_docs, self.num_docs + n)
        self._ids.extend(str(x) for x in ids)
        self.num_docs += n

    def finish(self) -> PlaidIndex:
        """Concatenate the batches and build the IVF (CSR over centroids)."""
        if self.num_docs == 0:
            raise ValueError("PlaidIndexBuilder.finish: no documents were added")
        n_cent = len(self.codec.centroids)
        ivf_codes = np.concatenate(self._ivf_codes)
        # Stable: within a code, batches (and docs inside a batch) stay in ascending doc order.
        order = np.argsort(ivf_codes, kind="stable")
        counts = np.bincount(ivf_codes, minlength=n_cent)
        return PlaidIndex(
            codec=self.codec,
            codes=np.concatenate(self._codes),
            residuals=np.concatenate(self._residuals),
            doclens=np.concatenate(self._doclens),
            ivf_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            ivf_doc_ids=np.concatenate(self._ivf_docs)[order],
            doc_ids=np.array(self._ids, dtype=str),
        )
