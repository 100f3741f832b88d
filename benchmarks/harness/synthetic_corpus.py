"""SciFact-shaped synthetic token corpora for the search-at-scale benchmark (NumPy only).

What is taken from SciFact (its encoded corpus and the codes of its PLAID index, `measure_shape`):
- the documents' centroid-code sequences, so per-document lengths, distinct-code ratios and the
  skew of tokens over centroids follow SciFact's;
- the tokens themselves: each distinct code of a synthetic document takes a real SciFact token
  of that code, picked at random, and every occurrence of the code is that token jittered
  (normalize(v + 0.1 g), g ~ N(0, I / D); cosine ~0.995 to v). The spread around each centroid
  keeps the real, anisotropic shape, and a code a document repeats stays one cell, as a repeated
  word does.

A synthetic document of length L (drawn from SciFact's lengths) joins two chunks of two random
SciFact documents' code sequences (cut at a random point, read from a random offset). Chunks keep
local co-occurrence; joining two of them keeps a corpus 16x SciFact's size from being 16 copies of
each document (whose top 10 would be a lottery among near-duplicates). Document i draws from rngs
(seed, i, stream), so the corpus is written, and any part regenerated, without holding it whole.

Queries are SciFact's real test queries (encoded by the same model), so candidate generation and
pruning meet real query vectors. There are no relevance judgements: quality is top-10 recall
against exhaustive MaxSim over the synthetic float32 vectors.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

JITTER = 0.1  # the noise added to a reused real token (per unit vector, spread over D dims)


@dataclasses.dataclass(frozen=True)
class CorpusShape:
    """What a synthetic corpus copies from a real one (see the module docstring)."""

    tokens: np.ndarray      # [T, D] float32 real token vectors (memory-mapped)
    doc_codes: list         # per real document, its tokens' centroid codes (int32 arrays)
    by_code: np.ndarray     # [T] token rows sorted by code
    code_offsets: np.ndarray  # [K + 1]: rows of code c = by_code[code_offsets[c]:code_offsets[c + 1]]

    def summary(self) -> dict:
        return {"docs": len(self.doc_codes), "tokens": len(self.by_code),
                "centroids": len(self.code_offsets) - 1, "jitter": JITTER,
                **code_stats(self.doc_codes, len(self.code_offsets) - 1)}


def code_stats(doc_codes, n_centroids: int) -> dict:
    """Length, distinct-code and skew statistics of per-document code sequences."""
    lens = np.array([len(c) for c in doc_codes])
    distinct = np.array([len(np.unique(c)) for c in doc_codes])
    counts = np.sort(np.bincount(np.concatenate(doc_codes), minlength=n_centroids))[::-1]
    top = max(1, n_centroids // 100)
    return {"doclen_mean": float(lens.mean()), "doclen_p50": float(np.median(lens)),
            "doclen_p99": float(np.percentile(lens, 99)),
            "distinct_ratio": float(distinct.sum() / max(lens.sum(), 1)),
            "top1pct_centroid_token_share": float(counts[:top].sum() / max(counts.sum(), 1))}


def measure_shape(tokens: np.ndarray, doclens: np.ndarray, codes: np.ndarray,
                  n_centroids: int) -> CorpusShape:
    """The shape of a real corpus: raw token vectors [T, D] in documents of `doclens` and each
    token's centroid code [T] (from an index built on them, K = n_centroids)."""
    codes = np.asarray(codes, np.int32)
    counts = np.bincount(codes, minlength=n_centroids)
    return CorpusShape(tokens, np.split(codes, np.cumsum(doclens)[:-1]),
                       np.argsort(codes, kind="stable").astype(np.int64),
                       np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


@dataclasses.dataclass(frozen=True)
class SyntheticCorpus:
    """n_tokens synthetic token vectors in the shape of `shape` (module docstring)."""

    shape: CorpusShape
    n_tokens: int
    seed: int = 0

    def _rng(self, i: int, stream: int) -> np.random.Generator:
        """Document i's generator for its codes (stream 0) or its noise (stream 1)."""
        return np.random.default_rng([self.seed, i, stream])

    @property
    def doclens(self) -> np.ndarray:
        """[N] int32 lengths (SciFact's, resampled) summing to n_tokens (the last one cut)."""
        real = np.array([len(c) for c in self.shape.doc_codes])
        real = real[real > 0]
        rng = np.random.default_rng([self.seed, 1 << 30])
        lens = real[rng.integers(len(real), size=int(self.n_tokens / real.mean() * 1.2) + 16)]
        cum = np.cumsum(lens)
        last = int(np.searchsorted(cum, self.n_tokens))
        lens = lens[:last + 1].copy()
        lens[last] -= cum[last] - self.n_tokens
        return lens.astype(np.int32)

    def doc_codes(self, i: int, length: int) -> np.ndarray:
        """Document i's centroid codes [length]: two chunks of two random real documents."""
        rng, real = self._rng(i, 0), self.shape.doc_codes
        cut = int(round(length * rng.uniform(0.3, 0.7)))
        parts = []
        for n in (cut, length - cut):
            src = real[int(rng.integers(len(real)))]
            while len(src) == 0:
                src = real[int(rng.integers(len(real)))]
            start = int(rng.integers(len(src)))
            parts.append(np.take(src, np.arange(start, start + n), mode="wrap"))
        return np.concatenate(parts)

    def doc(self, i: int, length: int) -> np.ndarray:
        """Document i's token vectors [length, D] float32 unit vectors."""
        codes, repeat = np.unique(self.doc_codes(i, length), return_inverse=True)
        rng, shape = self._rng(i, 1), self.shape
        size = shape.code_offsets[codes + 1] - shape.code_offsets[codes]
        picks = shape.by_code[shape.code_offsets[codes] + (rng.random(len(codes)) * size).astype(np.int64)]
        dim = shape.tokens.shape[1]
        # One real token per distinct code, repeats jittered apart: a word a document repeats
        # embeds nearly alike, so repeats stay in one cell, as in the real documents.
        v = np.asarray(shape.tokens[picks], np.float32)[repeat]
        v += np.float32(JITTER / np.sqrt(dim)) * rng.standard_normal((length, dim), dtype=np.float32)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))
        return v

    def write(self, folder: Path, queries: np.ndarray, query_ids: list[str], *,
              progress: bool = True) -> Path:
        """The benchmark cache layout (`benchmarks/harness/plaid_embeddings.py`): doc_tokens.npy [T, D]
        written block by block through a memory map, doclens.npy, queries.npy, ids.json, meta.json."""
        folder.mkdir(parents=True, exist_ok=True)
        lens = self.doclens
        dim = self.shape.tokens.shape[1]
        out = np.lib.format.open_memmap(folder / "doc_tokens.npy.tmp", mode="w+", dtype=np.float32,
                                        shape=(int(lens.sum()), dim))
        at = 0
        bar = _bar(len(lens), f"synthetic corpus {self.n_tokens:,} tokens", progress)
        for i, n in enumerate(lens):
            out[at:at + n] = self.doc(i, int(n))
            at += int(n)
            bar.update(1)
        bar.close()
        out.flush()
        del out
        (folder / "doc_tokens.npy.tmp").replace(folder / "doc_tokens.npy")
        np.save(folder / "doclens.npy", lens)
        np.save(folder / "queries.npy", np.asarray(queries, np.float32))
        (folder / "ids.json").write_text(json.dumps({"doc_ids": [f"s{i}" for i in range(len(lens))],
                                                     "query_ids": list(query_ids)}))
        meta = {"spec": self.spec(), "fingerprint": f"synthetic-scifact-shape-{self.n_tokens}-{self.seed}",
                "shape": self.shape.summary(),
                "synthetic": code_stats([self.doc_codes(i, int(n)) for i, n in enumerate(lens[:5000])],
                                        len(self.shape.code_offsets) - 1)}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
        return folder

    def spec(self) -> dict:
        return {"synthetic": "scifact-shape", "n_tokens": self.n_tokens, "seed": self.seed,
                "jitter": JITTER, "source_tokens": len(self.shape.by_code)}


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, mininterval=2.0)
