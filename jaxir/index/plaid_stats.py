"""Work counters of PLAID searches (`jaxir.index.plaid`); NumPy only."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np

# The stages a search is timed in: the centroid-score GEMM, candidate generation (1), pruned
# centroid interaction (2), full centroid interaction (3), exact MaxSim with decompression (4).
STAGES = ("centroid_scores", "candidates", "stage2_pruned", "stage3_approx", "stage4_exact")
_MERGE = threading.Lock()  # one for every PlaidStats: a few integer additions, never contended long


@dataclasses.dataclass
class PlaidStats:
    """Work counters of PLAID searches, summed over the queries of every search it is passed to
    (`search(..., stats=PlaidStats())`); `cells` keeps the last query's probed cells (with
    threads: the last to finish), so a test can recompute its candidates. Counting costs a few
    integer additions per query, under a lock so that a threaded `search_batch` loses none."""

    queries: int = 0
    cells_probed: int = 0      # distinct IVF cells read in stage 1 (after any widening)
    postings_read: int = 0     # IVF entries gathered in stage 1
    candidates: int = 0        # distinct documents out of stage 1
    stage2_scored: int = 0     # documents scored by pruned centroid interaction
    stage3_scored: int = 0     # documents scored by full centroid interaction
    decompressed_docs: int = 0  # documents decompressed for exact MaxSim (stage 4)
    decompressed_tokens: int = 0
    max_decompressed_docs: int = 0  # the most any one query decompressed
    cells: np.ndarray | None = None
    # Seconds per stage, summed over queries (STAGES order); a batch's one centroid GEMM is
    # shared out evenly over its queries. Wall time: with threads, stages overlap.
    seconds: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def merge_query(self, *, cells, postings, candidates, stage2, stage3, docs, tokens,
                    seconds=()) -> None:
        with _MERGE:
            self._merge(cells, postings, candidates, stage2, stage3, docs, tokens)
            for name, value in zip(STAGES, seconds):
                self.seconds[name] += float(value)

    def milliseconds_per_query(self) -> dict[str, float]:
        """The mean time of each stage per query, in milliseconds (the profile of a run)."""
        return {name: 1e3 * value / max(self.queries, 1) for name, value in self.seconds.items()}

    def _merge(self, cells, postings, candidates, stage2, stage3, docs, tokens) -> None:
        self.queries += 1
        self.cells, self.cells_probed = cells, self.cells_probed + len(cells)
        self.postings_read += postings
        self.candidates += candidates
        self.stage2_scored += stage2
        self.stage3_scored += stage3
        self.decompressed_docs += docs
        self.decompressed_tokens += tokens
        self.max_decompressed_docs = max(self.max_decompressed_docs, docs)
