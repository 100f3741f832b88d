"""The runtime's thread pool: query order kept, errors raised, bad thread counts refused; the
BM25 and sparse batches give one thread's results over several."""
import threading

import numpy as np
import pytest

from jaxir.errors import OptionError
from jaxir.index.query_pool import machine_cores, map_queries, resolve_threads


def test_results_come_back_in_query_order_from_several_threads():
    seen = set()

    def fn(x):
        seen.add(threading.current_thread().name)
        return x * x + np.sum(np.random.default_rng(x).random(20_000) > 2)  # some GIL-free work

    items = list(range(200))
    assert map_queries(fn, items, 4) == [x * x for x in items]
    assert len(seen) > 1 and all(n.startswith("jaxir-search") for n in seen)
    assert map_queries(fn, [], 4) == [] and map_queries(fn, [3], None) == [9]


def test_the_first_failing_query_in_order_is_raised():
    def fn(x):
        if x in (7, 40):
            raise KeyError(f"query {x}")
        return x

    with pytest.raises(KeyError, match="query 7"):
        map_queries(fn, range(50), 3)


def test_thread_counts():
    assert resolve_threads(None) == machine_cores() >= 1 and resolve_threads(3) == 3
    for bad in (0, -2, 2.0, "2", True):
        with pytest.raises(OptionError, match="threads must be an integer >= 1"):
            resolve_threads(bad)


def test_bm25_batch_over_threads_equals_one_thread(scifact_dir):
    from jaxir.eval.beir import load_beir
    from jaxir.index.bm25 import BM25Index

    data = load_beir(scifact_dir, split="test")
    index = BM25Index.build(data.doc_texts(), doc_ids=data.doc_ids)
    queries = list(data.queries.values())[:60]
    one, many = index.search_batch(queries, 10, threads=1), index.search_batch(queries, 10, threads=3)
    for (ids1, s1), (ids2, s2) in zip(one, many, strict=True):
        assert ids1 == ids2
        np.testing.assert_array_equal(s1, s2)
