"""PLAID: a ColBERTv2 residual-compressed index with centroid-interaction search (NumPy only).

Index: codec (centroids [K, D], bucket cutoffs/weights, nbits), codes [T] int32, packed residuals
[T, D*nbits/8] uint8, doclens [N] int32 (doc d = tokens offsets[d] : offsets[d] + doclens[d]), and
an IVF in CSR form: ivf_doc_ids[ivf_offsets[c] : ivf_offsets[c+1]] = sorted unique docs with a
token coded c. Search for a query Q [Lq, D] (PLAID, Santhanam et al. 2022):
  1. S_cq = C Q^T [K, Lq]; candidates = union of the IVF lists of each token's top-ncells centroids.
  2. prune centroids with max_i S_cq < threshold;
     approx(d) = sum_i max_{kept codes j of d} S_cq[j, i]; keep the top ndocs.
  3. the same without pruning; keep the top ndocs / 4.
  4. exact MaxSim over those documents' decompressed vectors, top k.
Ties break by document index. `PlaidStats` counts each stage's work and time. Always returns
min(k, N) results: the candidate set is widened (more cells, finally every document) when it
holds fewer than k documents.

Where the time goes (SciFact, one thread: `docs/results-log.md`) shaped four choices: S_cq is
kept as [K, Lq], so stages 2-4 gather whole 128-byte rows; per-document maxima are taken over
power-of-two padded blocks (`exact.segment_max_rows`), not one reduction per document; stage 2
gathers kept codes from whichever is shorter, the kept cells' IVF lists or the candidates' code
lists; stage 4 never materialises a unit vector: q . normalize(C_c + r) = (S_cq[c] + q . r) /
||C_c + r||, with the per-token norms derived once per index (4 bytes a token in memory, nothing
on disk).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError
from . import exact
from .codec import ResidualCodec
from .plaid_stats import PlaidStats
from .plaid_kernels import any_at_least, keep_top, kept_codes, top_rows
from .query_pool import map_queries
from .store import load_index, save_index

METHOD = "colbert-plaid"
_PRUNED = np.float32(-1e4)  # score of a pruned centroid: such codes never win a max


@dataclasses.dataclass(frozen=True)
class PlaidParams:
    """Search knobs; `PlaidParams.for_k(k)` gives the PLAID defaults."""

    ncells: int
    centroid_score_threshold: float
    ndocs: int

    @classmethod
    def for_k(cls, k: int) -> "PlaidParams":
        if k <= 10:
            return cls(1, 0.5, 256)
        if k <= 100:
            return cls(2, 0.45, 1024)
        return cls(4, 0.4, max(4 * k, 4096))


def num_sample_docs(n_docs: int) -> int:
    """Documents to sample for codec fitting: min(1 + 16 * sqrt(120 * N), N)."""
    return min(1 + int(16 * math.sqrt(120 * n_docs)), n_docs)


@dataclasses.dataclass
class PlaidIndex:
    codec: ResidualCodec
    codes: np.ndarray  # [T] int32
    residuals: np.ndarray  # [T, D * nbits / 8] uint8
    doclens: np.ndarray  # [N] int32
    ivf_offsets: np.ndarray  # [K + 1] int64
    ivf_doc_ids: np.ndarray  # [E] int32
    doc_ids: np.ndarray  # [N] str
    deleted: np.ndarray | None = None  # [N] bool: hidden from every search (None: none are)
    # num_live (set in __post_init__): the documents a search can return.

    def __post_init__(self):
        self.doc_offsets = np.concatenate([[0], np.cumsum(self.doclens, dtype=np.int64)])
        if self.deleted is not None and not np.any(self.deleted):
            self.deleted = None
        self.num_live = self.num_docs - (0 if self.deleted is None else int(np.count_nonzero(self.deleted)))

    @property
    def num_docs(self) -> int:
        """Rows of the index, hidden (deleted) ones included: row ids stay stable until `compact`."""
        return len(self.doclens)

    def live(self, pids: np.ndarray) -> np.ndarray:
        """`pids` without the deleted rows."""
        return pids if self.deleted is None else pids[~self.deleted[pids]]

    @property
    def num_tokens(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """Bytes of all stored arrays (what the index costs on disk, minus headers)."""
        return sum(int(a.nbytes) for a in self.to_arrays().values())

    def decompress_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids [t] -> decoded unit vectors [t, D] float32."""
        codes = np.take(self.codes, tokens)
        return self.codec.decompress(codes, np.take(self.residuals, tokens, axis=0))

    # ---- search -----------------------------------------------------------------------------
    def search(self, q: np.ndarray, k: int = 10, *, q_mask: np.ndarray | None = None,
               ncells: int | None = None, centroid_score_threshold: float | None = None,
               ndocs: int | None = None, stats: PlaidStats | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One query [Lq, D] -> (scores [k'] float32, doc indices [k'] int64), k' = min(k, live docs).
        stats: a PlaidStats the search's work is added to."""
        q = exact.prepare_query(q, q_mask, self.codec.dim)
        params = self._params(k, ncells, centroid_score_threshold, ndocs)
        return self._search_one(q, k, params, stats)

    def search_batch(self, queries: np.ndarray, k: int = 10, *, q_mask: np.ndarray | None = None,
                     stats: PlaidStats | None = None, threads: int | None = None,
                     **overrides) -> tuple[np.ndarray, np.ndarray]:
        """Queries [B, Lq, D] (q_mask [B, Lq]) -> (scores [B, k'], doc indices [B, k']), the
        queries spread over `threads` (default: the machine's cores) with one thread's results."""
        queries = np.asarray(queries, np.float32)
        if queries.ndim != 3:
            raise ValueError(f"search_batch expects [B, Lq, D] queries, got {queries.shape}")
        params = self._params(k, overrides.pop("ncells", None),
                              overrides.pop("centroid_score_threshold", None),
                              overrides.pop("ndocs", None))
        if overrides:
            raise TypeError(f"search_batch got unknown options {sorted(overrides)}")
        kk = min(k, self.num_live)
        scores = np.zeros((len(queries), kk), np.float32)
        pids = np.zeros((len(queries), kk), np.int64)
        masks = [None] * len(queries) if q_mask is None else q_mask
        kept = [exact.prepare_query(q, m, self.codec.dim) for q, m in zip(queries, masks)]
        self.warm(plaid=True)
        # Each query is one task, its centroid GEMM included: a batch gives the same bits as
        # single searches, and no [K, B * Lq] score matrix is ever held.
        one = lambda q: self._search_one(q, k, params, stats)  # noqa: E731
        for b, (s, p) in enumerate(map_queries(one, kept, threads)):
            scores[b], pids[b] = s, p
        return scores, pids

    def warm(self, plaid: bool = True) -> None:
        """Compute the lazily derived tables now, once, before threads share them: the codec's
        and, for PLAID search (not exhaustive or fp16 search), the per-document distinct codes
        and the per-token inverse norms."""
        self.codec.centroids32, self.codec.lookup  # noqa: B018
        if plaid:
            self._distinct_codes, self._inv_norms  # noqa: B018

    def _params(self, k, ncells, threshold, ndocs) -> PlaidParams:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        base = PlaidParams.for_k(k)
        return PlaidParams(
            ncells=base.ncells if ncells is None else int(ncells),
            centroid_score_threshold=(base.centroid_score_threshold if threshold is None
                                      else float(threshold)),
            ndocs=base.ndocs if ndocs is None else int(ndocs))

    def _search_one(self, q, k, params: PlaidParams, stats: PlaidStats | None = None):
        """q [Lq, D] -> top-k (scores, doc indices)."""
        n3 = max(params.ndocs // 4, k)
        n2 = max(params.ndocs, n3)
        laps = [time.perf_counter()]
        # S_cq = C Q^T [K, Lq]: one row per centroid, so every later stage gathers whole rows.
        s_cq = self.codec.centroids32 @ q.T
        laps.append(time.perf_counter())
        pids, cells, postings = self._candidates(s_cq, params.ncells, k)
        n_candidates, stage2, stage3 = len(pids), 0, 0
        laps.append(time.perf_counter())
        if len(pids) > n2:
            kept = any_at_least(s_cq, params.centroid_score_threshold)
            stage2 = len(pids)
            pids = keep_top(pids, self._pruned_scores(pids, s_cq, kept), n2)
        laps.append(time.perf_counter())
        if len(pids) > n3:
            stage3 = len(pids)
            pids = keep_top(pids, self._approx_scores(pids, s_cq), n3)
        laps.append(time.perf_counter())
        scores = self._exact_scores(q, s_cq, pids)
        top = exact.top_k(scores, pids, k)
        laps.append(time.perf_counter())
        if stats is not None:
            stats.merge_query(cells=cells, postings=postings, candidates=n_candidates, stage2=stage2,
                              stage3=stage3, docs=len(pids), tokens=int(self.doclens[pids].sum()),
                              seconds=np.diff(laps))
        return top

    def _exact_scores(self, q: np.ndarray, s_cq: np.ndarray, pids: np.ndarray) -> np.ndarray:
        """Stage 4: exact MaxSim [n] of q against documents `pids`, over decompressed vectors.

        q . normalize(C_c + r) = (S_cq[c] + q . r) * inv_norm: the same scores as decompressing
        (float32 rounding apart), without gathering centroids or normalising [t, D] vectors.
        """
        lens = self.doclens[pids].astype(np.int64)
        out = np.empty(len(pids), np.float32)
        for lo, hi in exact.doc_blocks(lens, exact.BLOCK_TOKENS):
            tokens = exact.gather_ranges(self.doc_offsets[pids[lo:hi]], lens[lo:hi])
            x = self.codec.residuals(np.take(self.residuals, tokens, axis=0)) @ q.T  # [t, Lq]
            x += np.take(s_cq, np.take(self.codes, tokens), axis=0)
            x *= np.take(self._inv_norms, tokens)[:, None]
            out[lo:hi] = exact.segment_max_rows(x, np.arange(len(tokens)), lens[lo:hi]).sum(axis=1)
        return out

    def _candidates(self, s_cq: np.ndarray, ncells: int, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(sorted unique docs in the IVF lists of every token's top-ncells centroids (widened),
        the cells read, the postings read)."""
        n_cent = s_cq.shape[0]
        ncells = max(1, min(ncells, n_cent))
        while True:
            cells = np.unique(top_rows(s_cq, ncells))
            starts = self.ivf_offsets[cells]
            lens = self.ivf_offsets[cells + 1] - starts
            hit = np.zeros(self.num_docs, bool)  # the union by a mask: O(N + postings), no sort
            hit[self.ivf_doc_ids[exact.gather_ranges(starts, lens)]] = True
            pids = self.live(np.flatnonzero(hit))
            if len(pids) >= min(k, self.num_live) or ncells == n_cent:
                break
            ncells = min(2 * ncells, n_cent)
        if len(pids) < min(k, self.num_live):  # only empty documents are left out: take them all
            pids = self.live(np.arange(self.num_docs, dtype=np.int64))
        return pids, cells, int(lens.sum())

    def _approx_scores(self, pids: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Centroid interaction: sum_i max_{codes j of d} table[j, i], table [K, Lq] -> [n].

        Runs over each document's distinct codes (a max ignores repeats): on SciFact that is 58 %
        of its tokens.
        """
        offsets, lens, codes = self._distinct_codes
        lens_p = lens[pids]
        return exact.segment_row_maxsim(table, codes[exact.gather_ranges(offsets[pids], lens_p)],
                                        lens_p)

    def _pruned_scores(self, pids: np.ndarray, table: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Stage 2: centroid interaction over kept centroids only, [n] scores (table [K, Lq]).

        Equal to `_approx_scores` with pruned columns set to -1e4 (a kept code always beats a
        pruned one, so only kept codes can win a max), but gathers just the kept codes: with the
        default thresholds that is a small share of them. A doc with no kept code scores
        Lq * -1e4, as with the masked table.
        """
        codes = kept_codes(self._distinct_codes, self.ivf_offsets, self.ivf_doc_ids, pids, kept)
        return exact.segment_row_maxsim(table, *codes, fill=_PRUNED)

    @functools.cached_property
    def _distinct_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-document sorted distinct centroid codes as CSR: (offsets [N+1], lens [N], codes [U])."""
        doc = np.repeat(np.arange(self.num_docs, dtype=np.int64), self.doclens)
        keys = np.unique(doc * len(self.codec.centroids) + np.asarray(self.codes, np.int64))
        doc_of, codes = np.divmod(keys, len(self.codec.centroids))
        lens = np.bincount(doc_of, minlength=self.num_docs).astype(np.int64)
        return np.concatenate([[0], np.cumsum(lens)]), lens, codes.astype(np.int32)

    @functools.cached_property
    def _inv_norms(self) -> np.ndarray:
        """[T] float32: 1 / ||C_code + r|| of every token (stage 4's normaliser), in blocks."""
        out = np.empty(self.num_tokens, np.float32)
        for lo in range(0, self.num_tokens, exact.BLOCK_TOKENS):
            hi = min(lo + exact.BLOCK_TOKENS, self.num_tokens)
            out[lo:hi] = self.codec.inverse_norms(self.codes[lo:hi], self.residuals[lo:hi])
        return out

    # ---- persistence --------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.codec.centroids, "bucket_cutoffs": self.codec.cutoffs,
            "bucket_weights": self.codec.weights, "codes": self.codes,
            "residuals": self.residuals, "doclens": self.doclens,
            "ivf_offsets": self.ivf_offsets, "ivf_doc_ids": self.ivf_doc_ids,
            "doc_ids": self.doc_ids,
            **({} if self.deleted is None else {"deleted": self.deleted}),
        }

    def save(self, path: str | Path, *, model_fingerprint: str, meta: dict | None = None) -> Path:
        """Write the index folder (atomic) with format metadata for `load`."""
        return save_index(path, self.to_arrays(), method=METHOD,
                          model_fingerprint=model_fingerprint, meta={**(meta or {}), **self.info()})

    def info(self) -> dict:
        """The manifest's description of this index (sizes, codec)."""
        return {"nbits": self.codec.nbits, "dim": self.codec.dim, "num_docs": self.num_docs,
                "num_tokens": self.num_tokens, "num_centroids": len(self.codec.centroids),
                **({} if self.deleted is None else {"num_live": self.num_live})}

    @classmethod
    def load(cls, path: str | Path, *, model_fingerprint: str | None = None, mmap: bool = True,
             verify: bool = True) -> "PlaidIndex":
        """Read an index written by `save` (arrays memory-mapped unless mmap=False)."""
        return cls.from_stored(load_index(path, method=METHOD, model_fingerprint=model_fingerprint,
                                          mmap=mmap, verify=verify))

    @classmethod
    def from_stored(cls, stored) -> "PlaidIndex":
        """The index over a loaded folder's arrays (the same array objects)."""
        a = stored.arrays
        _check_consistent(stored.path, a, stored.meta)
        codec = ResidualCodec(a["centroids"], a["bucket_cutoffs"], a["bucket_weights"],
                              int(stored.meta["nbits"]))
        return cls(codec, a["codes"], a["residuals"], a["doclens"], a["ivf_offsets"],
                   a["ivf_doc_ids"], a["doc_ids"], a.get("deleted"))


def _check_consistent(path, a: dict, meta: dict) -> None:
    """Cross-array shape checks, so a mismatched index fails on load, not mid-search."""
    t, k = len(a["codes"]), len(a["centroids"])
    problems = [
        (int(np.sum(a["doclens"], dtype=np.int64)) != t, "doclens do not sum to len(codes)"),
        (len(a["residuals"]) != t, "residuals and codes differ in length"),
        (len(a["doc_ids"]) != len(a["doclens"]), "doc_ids and doclens differ in length"),
        (len(a["ivf_offsets"]) != k + 1, "ivf_offsets is not [K + 1]"),
        ("deleted" in a and (a["deleted"].shape != a["doclens"].shape or a["deleted"].dtype != bool),
         "deleted is not a bool [N]"),
        ("nbits" not in meta, "meta has no nbits"),
    ]
    for bad, what in problems:
        if bad:
            raise IndexFormatError(f"{path}: {what}")

