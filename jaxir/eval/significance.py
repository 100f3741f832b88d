"""Paired significance of a difference between two systems on the same queries (NumPy only).

Randomization (sign-flip) test: under H0 the two systems are exchangeable per query, so each
per-query difference d_q = a_q - b_q is equally likely to carry either sign. The two-sided p is
the share of random sign assignments whose |mean| is at least the observed |mean(d)|, counting
the observed one (so p > 0): p = (1 + #{|mean(s * d)| >= |mean(d)|}) / (samples + 1).
This is the test IR papers report beside a paired t-test (Smucker et al., CIKM 2007); it makes no
normality assumption on nDCG differences, which are bounded and often lumpy.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import EmptyInputError


def paired_randomization_test(a, b, *, samples: int = 10_000, seed: int = 0,
                              chunk: int = 1_000) -> tuple[float, float]:
    """(mean(a - b), two-sided p) for per-query scores a [Q], b [Q] of the same queries in order."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"per-query scores must be equal 1-D arrays, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise EmptyInputError("no queries to compare")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    d = a - b
    observed = abs(d.mean())
    # Ties with the observed statistic count as extreme; the tolerance absorbs summation order.
    bar = observed - 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, samples, chunk):  # bounded memory: chunk x Q signs at a time
        signs = rng.integers(0, 2, size=(min(chunk, samples - start), d.size)) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ d) / d.size >= bar))
    return float(d.mean()), (1 + extreme) / (samples + 1)


def compare_per_query(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]],
                      metric: str, **kw) -> tuple[float, float]:
    """The test on one metric of two `evaluate(..., per_query=True)` results (same query ids)."""
    if set(a) != set(b):
        raise ValueError(f"the two runs cover different queries ({len(set(a) ^ set(b))} differ)")
    qids = sorted(a)
    return paired_randomization_test([a[q][metric] for q in qids], [b[q][metric] for q in qids], **kw)
