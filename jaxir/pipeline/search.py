"""The search loop every pipeline step shares: all queries of a split through one searcher."""
from __future__ import annotations

import sys
import time
from pathlib import Path


def run_search(searcher, queries: dict[str, str], k: int) -> tuple[dict, dict]:
    """Search all queries one batch at a time; returns (run, timing)."""
    qids = list(queries)
    t = time.perf_counter()
    hits = searcher.search([queries[q] for q in qids], k)
    total = time.perf_counter() - t
    run = {q: {d: float(s) for d, s in zip(ids, scores)} for q, (ids, scores) in zip(qids, hits)}
    return run, {"search_s": total, "ms_per_query": 1000 * total / max(len(qids), 1)}


def note_reused(name: str, index_dir: Path, build_s: float) -> None:
    """Say on stderr that an index (or a cached one) was reused rather than built: `index_for`
    took no build time."""
    if not build_s:
        print(f"reused the {name} index at {index_dir} (built before; not rebuilt)",
              file=sys.stderr, flush=True)
