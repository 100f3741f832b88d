"""Peak RSS of a streaming PLAID build stays within the stated bound; a leaky build breaks it.

A small version of `benchmarks/speed/bench_plaid_memory.py`: 200k synthetic token vectors (98 MiB as
float32) stream through `compress_stream` in 2,048-token batches, each build in its own fresh
process (VmHWM is per process). The honest build must stay under the benchmark's bound; the same
build that keeps every float batch alive (`--leak`) must exceed it, so the test can fail.
"""

import numpy as np
import pytest

from benchmarks.speed import bench_plaid_memory as bpm

N_TOKENS, DIM = 200_000, 128
CFG = {"n_tokens": N_TOKENS, "nbits": 2, "batch_tokens": 2048, "sample_docs": 50,
       "max_centroids": 256, "kmeans": "numpy", "leak": False, "seed": 0}
FLOAT_BYTES = 4 * DIM * N_TOKENS  # what holding the stream would cost


@pytest.fixture(scope="module")
def builds() -> dict:
    """{leak: child result}; both children run at once (their peaks are their own)."""
    procs = {leak: bpm.start_child({**CFG, "leak": leak}) for leak in (False, True)}
    return {leak: bpm.read_child(proc) for leak, proc in procs.items()}


def test_synthetic_stream_is_regenerable_and_unit():
    stream = bpm.SyntheticStream(5_000, seed=3)
    lens = stream.doclens
    assert lens.sum() == 5_000 and lens.min() >= 1 and lens.max() <= stream.max_len
    assert (lens[:-1] >= stream.min_len).all()
    batches = list(stream.batches(700))
    assert all(sum(len(d) for d in docs) >= 700 for _, docs in batches[:-1])
    streamed = np.concatenate([d for _, docs in batches for d in docs])
    picks = np.array([1, 4, 7])
    starts = np.concatenate([[0], np.cumsum(lens)])
    expected = np.concatenate([streamed[starts[i]:starts[i + 1]] for i in picks])
    np.testing.assert_array_equal(stream.sample(picks), expected)
    np.testing.assert_allclose(np.linalg.norm(streamed, axis=1), 1.0, atol=1e-5)


def test_capped_estimate_gives_min_of_card_k_and_cap():
    from jaxir.ops.kmeans import num_centroids
    for n in (1_000, 250_000, 2_000_000):
        for cap in (256, 1024, 65536):
            assert num_centroids(bpm.capped_estimate(n, cap)) == min(num_centroids(n), cap)
    with pytest.raises(ValueError):
        bpm.capped_estimate(10_000, 1000)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_streaming_build_stays_under_bound(builds):
    r = builds[False]
    assert r["num_tokens"] == N_TOKENS and r["k"] == 256
    # Codes 4 + residuals 32 B per token, IVF <= 4, centroids and ids well under 2.
    assert 36 <= r["index_bytes"] / N_TOKENS <= 42
    bound = bpm.bound_bytes(r)
    assert bound < FLOAT_BYTES, "the bound must be below holding the float stream"
    assert r["peak"] - r["baseline"] <= bound
    stream_bound = bpm.stream_bound_bytes(r)
    assert stream_bound < FLOAT_BYTES / 2
    assert r["stream_peak"] - r["after_fit"] <= stream_bound


def test_leaky_build_breaks_bound(builds):
    ok, leak = builds[False], builds[True]
    assert leak["index_bytes"] == ok["index_bytes"]  # same index, only the memory differs
    assert leak["peak"] - leak["baseline"] > bpm.bound_bytes(leak)
    assert leak["stream_peak"] - leak["after_fit"] > bpm.stream_bound_bytes(leak)
    # The measurement sees the whole leak: about the float32 size of the stream.
    assert leak["stream_peak"] - ok["stream_peak"] > 0.8 * FLOAT_BYTES
