"""Checkpoints: bit-identical resume through fit(), retention, and clear errors on bad restores."""
import errno
import functools
import json
import logging
import sys

import jax
import numpy as np
import pytest

from jaxir import parallel
from jaxir.errors import CheckpointError
from jaxir.training.checkpoint import Checkpointer, orbax_noise_held
from jaxir.training.data import ArraySource, EpochSampler
from jaxir.training.loop import FitConfig, fit
from jaxir.training.optim import OptimConfig, make_optimizer
from jaxir.training.state import abstract_state, create_state
from jaxir.training.toy import toy_data, toy_init

OPT = OptimConfig(learning_rate=5e-2, warmup_steps=1, total_steps=6)


def _fit(out_dir, steps, mesh):
    cfg = FitConfig(steps=steps, batch_size=8, seed=5, out_dir=str(out_dir), log_every=1,
                    checkpoint_every=2, progress=False, fast_compile=True)
    from jaxir.training.toy import toy_task

    # 20 rows / batch 8: the sampler crosses an epoch boundary within 6 steps.
    return fit(toy_task(dropout=0.2), ArraySource(toy_data(20, seed=2)), config=cfg, optim=OPT,
               mesh=mesh)


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_resume_is_bit_identical(tmp_path):
    mesh = parallel.make_mesh(2, 2, devices=jax.devices()[:4])
    straight = _fit(tmp_path / "a", 6, mesh)
    _fit(tmp_path / "b", 3, mesh)  # stops after 3 steps (checkpoint at 2 and at the end, 3)
    resumed = _fit(tmp_path / "b", 6, mesh)
    assert int(resumed.state.step) == 6
    a, b = jax.device_get(straight.state), jax.device_get(resumed.state)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert straight.last_train["loss"] == resumed.last_train["loss"]
    # The resumed run really started at step 3: it logged only steps 4..6.
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert Checkpointer(tmp_path / "b" / "checkpoints", config={}).all_steps()[-1] == 6


@functools.lru_cache(maxsize=None)
def _state(dim=16):
    optimizer, _ = make_optimizer(OPT)
    params = toy_init(jax.random.PRNGKey(0), None, dim=dim)
    return jax.jit(create_state, static_argnums=1)(params, optimizer, jax.random.PRNGKey(1))


def _target(state):
    mesh = parallel.make_mesh(devices=jax.devices()[:1])
    return abstract_state(state, parallel.param_shardings(state, mesh))


def _saved(tmp_path, config=None):
    ckpt = Checkpointer(tmp_path / "ck", config=config or {"model": "toy", "dim": 16})
    ckpt.save(7, _state(), data_state={"seed": 1, "epoch": 2, "position": 8})
    ckpt.wait()
    return ckpt


def test_roundtrip_restores_state_and_data_position(tmp_path):
    ckpt = _saved(tmp_path)
    state, data = ckpt.restore(_target(_state()))
    assert data == {"seed": 1, "epoch": 2, "position": 8}
    for x, y in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(_state())):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_other_config_or_tree_is_rejected(tmp_path):
    _saved(tmp_path)
    other = Checkpointer(tmp_path / "ck", config={"model": "toy", "dim": 32})
    with pytest.raises(CheckpointError, match=r"another config.*dim: checkpoint=16 now=32"):
        other.restore(_target(_state()))
    same_cfg = Checkpointer(tmp_path / "ck", config={"model": "toy", "dim": 16})
    with pytest.raises(CheckpointError, match=r"does not fit this model.*embed/embedding"):
        same_cfg.restore(_target(_state(dim=8)))


@pytest.mark.parametrize("damage", ["meta", "arrays", "missing"])
def test_corrupt_checkpoint_raises_checkpoint_error(tmp_path, damage):
    ckpt = _saved(tmp_path)
    step_dir = tmp_path / "ck" / "7"
    if damage == "meta":
        (step_dir / "meta" / "metadata").write_text("{not json")
    elif damage == "arrays":
        for f in (step_dir / "state").rglob("*"):
            if f.is_file() and f.parent.name == "d":
                f.write_bytes(b"\x00garbage" * 3)
    else:
        for f in (step_dir / "state").rglob("*"):
            if f.is_file() and "ocdbt" in f.parts[-2] + f.name:
                f.unlink()
    with pytest.raises(CheckpointError, match=str(step_dir)):
        ckpt.restore(_target(_state()))


def test_missing_checkpoint_and_retention(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty", config={}).restore(_target(_state()))
    ckpt = Checkpointer(tmp_path / "keep", config={}, keep=2, best_metric="loss")
    state = _state()
    for step, loss in zip(range(1, 6), [0.5, 0.1, 0.4, 0.3, 0.6]):
        ckpt.save(step, state, data_state={"seed": 0, "epoch": 0, "position": 0},
                  metrics={"loss": loss})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 4, 5]  # best (2) + last two


def test_sampler_state_resumes_the_same_order():
    a = EpochSampler(10, 4, seed=3)
    seq = [a.next_rows() for _ in range(5)]
    b = EpochSampler(10, 4, seed=3)
    for _ in range(2):
        b.next_rows()
    c = EpochSampler(10, 4, seed=3)
    c.restore(b.state())
    for want in seq[2:]:
        np.testing.assert_array_equal(c.next_rows(), want)
    assert sorted(np.concatenate(seq[:2])) == sorted(set(np.concatenate(seq[:2])))
    assert not np.array_equal(seq[0], seq[2])  # epoch 1 is reshuffled
    with pytest.raises(ValueError, match="seed"):
        EpochSampler(10, 4, seed=4).restore(b.state())


class _RaisesWhenFreed:
    def __init__(self, message):
        self.message = message

    def __del__(self):
        raise RuntimeError(self.message)


def _unraisable(message: str) -> None:
    """Reports RuntimeError(message) to sys.unraisablehook, as tensorstore's threads do."""
    _RaisesWhenFreed(message)


def test_orbax_noise_is_held_back_only_when_the_disk_is_full(monkeypatch, caplog):
    """A good save shows what orbax logged and reported; a full disk shows none of its ~1,500
    lines (the CLI says it in one), nor the failed write's late reports."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(str(u.exc_value)))
    absl, aio = logging.getLogger("absl"), logging.getLogger("asyncio")
    for g in (absl, aio):
        monkeypatch.setattr(g, "filters", [])  # what a full disk adds goes when the test ends
    before = [(list(g.handlers), g.propagate) for g in (absl, aio)]
    with orbax_noise_held():
        absl.warning("said during a good save")
        _unraisable("reported during a good save")
        assert not seen and not caplog.records  # held until the save ends
    assert [r.getMessage() for r in caplog.records] == ["said during a good save"]
    assert seen == ["reported during a good save"]
    full = ValueError("RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']")
    with pytest.raises(OSError), orbax_noise_held():
        absl.error("a writer thread's traceback", exc_info=full)
        _unraisable("Event loop is closed")
        raise OSError(errno.ENOSPC, "No space left on device")
    aio.error("Task exception was never retrieved", exc_info=full)  # the failed write, late
    _unraisable("Event loop is closed")
    aio.error("something else")
    _unraisable("anything else")
    assert [r.getMessage() for r in caplog.records] == ["said during a good save", "something else"]
    assert seen == ["reported during a good save", "anything else"]
    with pytest.raises(ValueError), orbax_noise_held():  # another failure: all it said is shown
        absl.error("why another save failed")
        raise ValueError("not a full disk")
    assert caplog.records[-1].getMessage() == "why another save failed"
    assert [(g.handlers, g.propagate) for g in (absl, aio)] == before
