"""The fit loop's progress bar, counted in optimizer updates, and the examples/s it shows.

JAX returns from a train step as soon as the step is dispatched, so a bar ticked then reaches
100 % while the last steps still run. Here a step counts once it has finished: when the next
one is dispatched, the one before is waited for (one step stays queued, so the device never
waits on the host), and at the logging cadence the current one too. With
``optim.accumulate = k`` the bar ticks once per k steps: its total is the run's updates.

Examples per second are those of the finished steps since the last reading, shown to three
significant digits: CPU runs make under one (the SciFact ColBERT run logged 0.46), which the bar
used to print as ``ex_s=0`` (``f"{rate:.0f}"``). The first step of a run compiles (tens of seconds
on CPU) and is timed apart, so that it does not drag the first reading down; it is the reading
only while it is the one step timed (a 1-step run, or ``log_every 1``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
from tqdm.auto import tqdm


class TrainProgress:
    """The bar of a run of `steps` train steps resumed at `start`, `accumulate` steps per update,
    `batch_size` examples per step; `desc` names it ("colbert train"); `clock`: seconds."""

    def __init__(self, desc: str, *, steps: int, start: int, accumulate: int, batch_size: int,
                 enabled: bool = True, clock: Callable[[], float] = time.perf_counter):
        self.bar = tqdm(desc=desc, total=steps // accumulate, initial=start // accumulate, unit="update",
                        disable=not enabled)
        self.accumulate, self.batch_size, self.first_step, self.clock = accumulate, batch_size, start + 1, clock
        self.first_rate = 0.0
        self.queued: tuple[int, Any] | None = None
        self.reset()

    def reset(self) -> None:
        """Restart the examples/s clock (after an eval or a save: they are not training)."""
        self.t0, self.examples = self.clock(), 0

    def dispatched(self, step: int, marker: Any) -> None:
        """Train step `step` is dispatched (`marker`: one of its outputs): the step before it is
        waited for and counted."""
        self.settle()
        self.queued = (step, marker)

    def settle(self) -> None:
        """Wait for the last dispatched step and count it: in the bar when it ends an update."""
        if self.queued is None:
            return
        step, marker = self.queued
        self.queued = None
        jax.block_until_ready(marker)
        if step == self.first_step:
            self.first_rate = self.batch_size / max(self.clock() - self.t0, 1e-9)
            self.reset()
        else:
            self.examples += self.batch_size
        if step % self.accumulate == 0:
            self.bar.update(1)

    def rate(self) -> float:
        """Examples/s of the steps settled since the last reading or reset (the first step's,
        compile included, when no other was timed); restarts the clock."""
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = self.examples / elapsed if self.examples else self.first_rate
        self.reset()
        return rate

    def show(self, loss: float, rate: float) -> None:
        # Three significant digits: a CPU run makes a few examples per second.
        self.bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{rate:.3g}")

    def close(self) -> None:
        self.settle()
        self.bar.close()
