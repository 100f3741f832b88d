"""The training progress bar: named by the method, counted in optimizer updates, ticked only once
an update has finished on the device, showing the examples/s of the finished steps."""
import dataclasses
import json

from jaxir.training.data import ArraySource
from jaxir.training.loop import FitConfig, fit
from jaxir.training.optim import OptimConfig
from jaxir.training.progress import TrainProgress
from jaxir.training.toy import toy_data, toy_task


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Step:
    """A dispatched step's output: it finishes, `seconds` later, when it is waited for."""

    def __init__(self, clock: Clock, seconds: float, waited: list):
        self.clock, self.seconds, self.waited = clock, seconds, waited

    def block_until_ready(self):
        self.clock.now += self.seconds
        self.waited.append(self)
        return self


def test_the_bar_ticks_per_update_once_it_has_finished(capsys):
    clock, waited = Clock(), []
    bar = TrainProgress("colbert train", steps=6, start=0, accumulate=2, batch_size=8, clock=clock)
    assert (bar.bar.total, bar.bar.desc) == (3, "colbert train")  # 6 steps of 2 micro-batches each
    steps = [Step(clock, 30.0 if i == 0 else 2.0, waited) for i in range(6)]  # the first one compiles
    bar.dispatched(1, steps[0])
    assert waited == [] and bar.bar.n == 0  # dispatched is not done
    bar.dispatched(2, steps[1])
    assert waited == steps[:1] and bar.bar.n == 0  # step 1 done: half an update
    bar.settle()
    assert waited == steps[:2] and bar.bar.n == 1
    assert bar.rate() == 8 / 2.0  # step 2's 8 examples in 2 s; step 1's compile timed apart
    for i in range(3, 7):
        bar.dispatched(i, steps[i - 1])
    assert waited == steps[:5] and bar.bar.n == 2  # step 6 still queued: the last update not done
    bar.close()
    assert waited == steps and bar.bar.n == bar.bar.total == 3
    assert "colbert train: 100%" in capsys.readouterr().err


def test_the_rate_is_real_and_shown_below_one_example_per_second():
    clock = Clock()
    bar = TrainProgress("sparse train", steps=1, start=0, accumulate=1, batch_size=8, clock=clock, enabled=False)
    bar.dispatched(1, Step(clock, 20.0, []))
    bar.settle()
    assert bar.rate() == 8 / 20.0  # a 1-step run: its only step, compile included
    bar = TrainProgress("sparse train", steps=10, start=0, accumulate=1, batch_size=8, clock=clock)
    bar.show(2.5, 0.46)  # a CPU run's rate (the SciFact ColBERT run logged 0.46): printed ex_s=0 before
    assert "ex_s=0.46" in bar.bar.postfix
    bar.close()


def test_fit_names_the_bar_by_the_method_and_ends_it_at_the_last_update(tmp_path, capsys):
    task = toy_task()
    task = dataclasses.replace(task, config={**task.config, "method": "toy"})
    cfg = FitConfig(steps=6, batch_size=8, out_dir=str(tmp_path), log_every=2, fast_compile=True)
    fit(task, ArraySource(toy_data(32)), config=cfg, optim=OptimConfig(learning_rate=1e-2, total_steps=3, accumulate=2))
    err = capsys.readouterr().err
    assert "toy train: 100%" in err and "3/3" in err and "6/6" not in err
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and all(r["examples_per_s"] > 0 for r in rows)
