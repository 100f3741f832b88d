"""benchmarks/claims/teacher_ensemble.py: candidates are the union of each teacher's retrieved top-depth,
and each run is the per-query min-max weighted mean of the teachers over those candidates (float64
reference)."""

import numpy as np

from benchmarks.claims import teacher_ensemble as te


def test_candidates_skip_a_sparse_teachers_unretrieved_documents():
    dense = np.array([0.3, -0.2, 0.9, 0.1, 0.5])
    sparse = np.array([0.0, 2.0, 0.0, 0.0, 1.0])  # matches docs 1 and 4 only
    np.testing.assert_array_equal(te.candidates([dense, sparse], 2), [2, 4, 1])
    np.testing.assert_array_equal(te.candidates([sparse], 4), [1, 4])


def test_runs_are_the_min_max_weighted_mean_over_the_candidates():
    rng = np.random.default_rng(0)
    q, n, depth = 4, 30, 6
    dense = rng.normal(size=(q, n))
    sparse = np.where(rng.random((q, n)) < 0.4, rng.gamma(2.0, size=(q, n)), 0.0)
    doc_ids = [f"d{j}" for j in range(n)]
    weights = [[1.0, 0.0], [0.0, 1.0], [1.0, 3.0]]
    runs = te.ensemble_runs([dense.astype(np.float32), sparse.astype(np.float32)], doc_ids,
                            [f"q{i}" for i in range(q)], weights, depth)
    for i in range(q):
        cand = te.candidates([dense[i], sparse[i]], depth)
        assert set(runs[0][f"q{i}"]) == {doc_ids[j] for j in cand}
        rows = [dense[i, cand], sparse[i, cand]]
        norm = [(r - r.min()) / (r.max() - r.min()) for r in rows]
        for run, (a, b) in zip(runs, weights):
            want = (a * norm[0] + b * norm[1]) / (a + b)
            got = np.array([run[f"q{i}"][doc_ids[j]] for j in cand])
            np.testing.assert_allclose(got, want, atol=1e-6)
