"""The real fit loop for 3 steps at tiny size: log lines, loss-curve PNG and a checkpoint exist."""
import json
import math

import pytest

from jaxir.training.data import ArraySource
from jaxir.training.loop import FitConfig, fit
from jaxir.training.optim import OptimConfig
from jaxir.training.toy import toy_data, toy_task


@pytest.mark.slow  # > 3 s: left out of `make test-fast`
def test_fit_three_steps_writes_log_png_checkpoint(tmp_path):
    cfg = FitConfig(steps=3, batch_size=8, eval_batch_size=8, out_dir=str(tmp_path), log_every=1,
                    eval_every=3, mesh_model=2, progress=False, fast_compile=True)
    result = fit(toy_task(), ArraySource(toy_data(32)), config=cfg,
                 optim=OptimConfig(learning_rate=1e-2, total_steps=3),
                 eval_source=ArraySource(toy_data(16, seed=1)))
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["examples_per_s"] > 0
               for r in train)
    assert [r["step"] for r in records if r["split"] == "eval"] == [3]
    png = (tmp_path / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert (tmp_path / "checkpoints" / "3" / "state").is_dir()
    assert int(result.state.step) == 3 and result.last_train["loss"] == train[-1]["loss"]
