"""Paired randomization test against the exact test (all 2^Q sign assignments) on fresh inputs."""
import itertools

import numpy as np
import pytest

from jaxir.errors import EmptyInputError
from jaxir.eval.significance import compare_per_query, paired_randomization_test


def exact_p(a, b) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=d.size)))
    stats = np.abs(signs @ d) / d.size
    return float(np.mean(stats >= abs(d.mean()) - 1e-12))


@pytest.mark.parametrize("seed", range(4))
def test_monte_carlo_p_matches_the_exact_test(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=10)
    b = np.clip(a - rng.normal(0.05 * seed, 0.1, size=10), 0, 1)
    diff, p = paired_randomization_test(a, b, samples=20_000, seed=seed)
    assert diff == pytest.approx(float(np.mean(a - b)))
    # Monte Carlo standard error of p at 20k samples is <= 0.0036.
    assert p == pytest.approx(exact_p(a, b), abs=0.015)


def test_identical_systems_and_clear_wins():
    a = np.random.default_rng(0).uniform(size=300)
    assert paired_randomization_test(a, a)[1] == 1.0
    diff, p = paired_randomization_test(a + 0.05, a, samples=2_000)
    assert diff == pytest.approx(0.05) and p == pytest.approx(1 / 2_001)


def test_compare_per_query_pairs_by_query_id_and_rejects_bad_input():
    a = {"q1": {"ndcg@10": 1.0}, "q2": {"ndcg@10": 0.5}}
    b = {"q2": {"ndcg@10": 0.5}, "q1": {"ndcg@10": 0.0}}
    assert compare_per_query(a, b, "ndcg@10", samples=100)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different queries"):
        compare_per_query(a, {"q1": {"ndcg@10": 1.0}}, "ndcg@10")
    with pytest.raises(ValueError, match="equal 1-D"):
        paired_randomization_test([1.0, 2.0], [1.0])
    with pytest.raises(EmptyInputError):
        paired_randomization_test([], [])
