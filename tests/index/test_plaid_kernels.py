"""PLAID's array kernels against loops or plain NumPy references on random inputs: the padded-block
segment maxima (`exact.segment_max_rows`, `segment_row_maxsim`), the kept-centroid test
(`plaid_kernels.any_at_least`) and the probed cells (`plaid_kernels.top_rows`)."""
import numpy as np
import pytest

from jaxir.index import exact, plaid_kernels


def test_segment_max_rows_equals_a_loop_over_segments():
    """The padded-block segment max: random segment sizes (0 included), rows gathered by index."""
    rng = np.random.default_rng(17)
    rows = rng.normal(size=(300, 7)).astype(np.float32)
    counts = rng.integers(0, 70, 120)
    counts[:3] = [0, 1, 64]
    index = rng.integers(0, 300, int(counts.sum()))
    got = exact.segment_max_rows(rows, index, counts, fill=-5.0)
    at = 0
    for s, n in enumerate(counts):
        want = rows[index[at:at + n]].max(axis=0) if n else np.full(7, -5.0)
        np.testing.assert_array_equal(got[s], want)
        at += n
    sums = exact.segment_row_maxsim(rows, index, counts, fill=-5.0, block=50)  # several blocks
    np.testing.assert_allclose(sums, got.sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize("width", [32, 24, 7])
def test_kept_rows_test_equals_row_max(width):
    rng = np.random.default_rng(width)
    table = rng.normal(scale=0.3, size=(1000, width)).astype(np.float32)
    for threshold in (0.2, 0.5, 0.9, 2.0):
        np.testing.assert_array_equal(plaid_kernels.any_at_least(table, threshold),
                                      table.max(axis=1) >= threshold)


@pytest.mark.parametrize("n", [1, 2, 4, 12])
def test_top_rows_are_each_columns_largest(n):
    rng = np.random.default_rng(n)
    table = rng.normal(size=(500, 9)).astype(np.float32)
    table[7, 0] = table[3, 0] = 10.0  # a tie: the lower row comes first
    got = plaid_kernels.top_rows(table, n)
    want = np.argsort(-table, axis=0, kind="stable")[:n]
    assert got.shape == (n, 9)
    np.testing.assert_array_equal(np.sort(got, axis=0), np.sort(want, axis=0))
    assert got[0, 0] == 3
