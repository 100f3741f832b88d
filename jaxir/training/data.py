"""Seeded, resumable data order: which example rows go into each global batch.

Epoch ``e`` visits the rows in ``default_rng([seed, e]).permutation(N)``; the sampler's whole
state is ``{"seed", "epoch", "position"}`` (plain ints, JSON in the checkpoint), so a resumed
run draws exactly the batches the uninterrupted run would have drawn. The last incomplete
batch of an epoch is dropped so every step has the same shape (no recompiles).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np


class BatchSource(Protocol):
    """Anything with a length and ``take(rows) -> pytree of NumPy arrays [len(rows), ...]``."""

    def __len__(self) -> int: ...

    def take(self, rows: np.ndarray) -> Any: ...


class ArraySource:
    """A BatchSource over in-memory arrays sharing the leading dimension N."""

    def __init__(self, arrays: Any):
        sizes = {np.shape(x)[0] for x in jax.tree_util.tree_leaves(arrays)}
        if len(sizes) != 1:
            raise ValueError(f"ArraySource: leaves disagree on the leading dim: {sorted(sizes)}")
        self.arrays = arrays
        self._n = sizes.pop()

    def __len__(self) -> int:
        return self._n

    def take(self, rows: np.ndarray) -> Any:
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[rows], self.arrays)


class EpochSampler:
    """Global batches of row indices, reshuffled every epoch from ``(seed, epoch)``."""

    def __init__(self, num_examples: int, batch_size: int, *, seed: int, shuffle: bool = True):
        if not 0 < batch_size <= num_examples:
            raise ValueError(f"batch_size {batch_size} must be in [1, {num_examples}] "
                             f"(the number of examples)")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_examples)

    def next_rows(self) -> np.ndarray:
        """Row indices of the next global batch, ``[batch_size]`` int64."""
        if self.position + self.batch_size > self.num_examples:
            self.epoch += 1
            self.position = 0
        rows = self._order()[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return rows

    def state(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"sampler seed {self.seed} != checkpointed seed {state['seed']}")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


def process_rows(rows: np.ndarray, *, process_index: int | None = None,
                 process_count: int | None = None) -> np.ndarray:
    """This process's contiguous slice of a global batch (what ``shard_batch`` expects)."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if len(rows) % count:
        raise ValueError(f"global batch {len(rows)} is not divisible by {count} processes")
    per = len(rows) // count
    return rows[index * per:(index + 1) * per]
