"""Queries spread over a thread pool (NumPy only): the runtime's one way to use every core.

A search is a sequence of independent per-query functions whose heavy parts (GEMMs, gathers,
partitions, sorts) run in NumPy with the GIL released, so threads share one memory-mapped index
instead of copying it into processes. Results come back in query order and equal one thread's:
each query's work reads only shared read-only arrays and writes only its own outputs.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import OptionError

T = TypeVar("T")
R = TypeVar("R")


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """`threads` checked (>= 1); None: the machine's cores."""
    if threads is None:
        return machine_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OptionError(f"threads must be an integer >= 1 (or None for the machine's {machine_cores()} "
                         f"cores), got {threads!r}")
    return threads


def map_queries(fn: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """[fn(x) for x in items] over min(threads, len(items)) threads, in order. An exception in
    any query is raised here (the first in query order), after the pool has stopped.

    Work goes out in contiguous chunks, 4 per thread: one task per query would cost more than a
    millisecond-scale BM25 query itself, one chunk per thread would leave a thread idle behind a
    slow PLAID query."""
    items = list(items)
    n = min(resolve_threads(threads), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    size = -(-len(items) // (4 * n))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="jaxir-search") as pool:
        return [r for part in pool.map(lambda chunk: [fn(x) for x in chunk], chunks) for r in part]
