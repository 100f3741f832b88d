"""The one model-folder format: round trip, checks on load, 0.1 folders refused in one line, atomic writes."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxir.errors import CheckpointError
from jaxir.models import saved_model
from jaxir.models.saved_model import config_from_dict, load_model, save_model


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    width: int = 3
    weights: tuple[float, ...] = (1.0, 1.0)


def toy_params(config, seed=0):
    rng = np.random.default_rng(seed)
    return {"dense": {"kernel": rng.normal(size=(config.width, 2)).astype(np.float32),
                      "bias": np.zeros(2, np.float32)}, "scale": np.float32(1.5)}


def load(path, method="toy"):
    return load_model(path, method=method, make_config=lambda raw, extra: config_from_dict(ToyConfig, raw),
                      abstract_params=lambda cfg, extra: jax.eval_shape(lambda: toy_params(cfg)))


def test_round_trip_keeps_config_params_and_extra(tmp_path):
    cfg = ToyConfig(width=4, weights=(0.5, 2.0))
    params = toy_params(cfg, seed=1)
    save_model(tmp_path / "m", method="toy", config=cfg, params=params, extra={"bert": {"layers": 2}})
    got_cfg, got, info = load(tmp_path / "m")
    assert got_cfg == cfg and info["extra"] == {"bert": {"layers": 2}}
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, params)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["version"] == saved_model.VERSION


def test_wrong_method_missing_folder_and_foreign_folder_are_errors(tmp_path):
    save_model(tmp_path / "m", method="toy", config=ToyConfig(), params=toy_params(ToyConfig()))
    with pytest.raises(CheckpointError, match="holds a 'toy' model, not a 'colbert' one"):
        load(tmp_path / "m", method="colbert")
    with pytest.raises(CheckpointError, match="no model folder"):
        load(tmp_path / "nosuch")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="not a jaxir model folder"):
        load(tmp_path / "plain")


def test_params_that_do_not_fit_truncated_or_edited_folders_are_errors(tmp_path):
    save_model(tmp_path / "wide", method="toy", config=ToyConfig(width=3), params=toy_params(ToyConfig(width=5)))
    with pytest.raises(CheckpointError, match="does not fit|do not fit"):
        load(tmp_path / "wide")
    save_model(tmp_path / "m", method="toy", config=ToyConfig(), params=toy_params(ToyConfig()))
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps({**info, "fingerprint": "0" * 16}))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load(tmp_path / "m")
    save_model(tmp_path / "t", method="toy", config=ToyConfig(), params=toy_params(ToyConfig()))
    for f in (tmp_path / "t" / "params").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load(tmp_path / "t")


def test_saved_configs_need_every_field_and_no_other():
    assert config_from_dict(ToyConfig, {"width": 7, "weights": [1, 2]}) == ToyConfig(width=7, weights=(1, 2))
    with pytest.raises(CheckpointError, match="no field 'colour'"):
        config_from_dict(ToyConfig, {"width": 7, "weights": [1, 2], "colour": "red"})
    with pytest.raises(CheckpointError, match="lacks the field 'weights'"):  # never today's default
        config_from_dict(ToyConfig, {"width": 7})


def test_a_0_1_folder_is_refused_in_one_line(tmp_path):
    """jaxir 0.1's layouts (params.npz + <name>_config.json; a training folder's reranker/<step>)
    are no longer read: the loader names the file it looked for."""
    from jaxir.interop import detect_format

    cfg = ToyConfig(width=2)
    params = toy_params(cfg)
    folder = tmp_path / "old"
    folder.mkdir()
    np.savez(folder / "params.npz", **{"dense/kernel": params["dense"]["kernel"],
                                       "dense/bias": params["dense"]["bias"], "scale": params["scale"]})
    (folder / "colbert_config.json").write_text(json.dumps({"size": 2}))
    with pytest.raises(CheckpointError, match="not a jaxir model folder \\(no model.json\\)"):
        load(folder, method="colbert")
    with pytest.raises(CheckpointError, match="neither a jaxir model folder \\(no model.json\\) nor a Hugging Face"):
        detect_format(folder)


KILL_MID_SAVE = """
import os, signal, sys
import numpy as np
from jaxir.models import saved_model
from tests.models.test_saved_model import ToyConfig, toy_params
def die(*a, **k):  # the params are on disk, model.json is not yet: the worst moment
    os.kill(os.getpid(), signal.SIGKILL)
saved_model.shutil.copy = die
saved_model.save_model(sys.argv[1], method="toy", config=ToyConfig(width=3),
                       params=toy_params(ToyConfig(width=3), seed=9), files={"x": __file__})
"""


def test_a_kill_during_a_save_leaves_the_previous_folder(tmp_path):
    cfg = ToyConfig(width=3)
    before = toy_params(cfg, seed=2)
    save_model(tmp_path / "m", method="toy", config=cfg, params=before)
    script = tmp_path / "kill.py"
    script.write_text(KILL_MID_SAVE)
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "m")], capture_output=True,
                          env={**os.environ, "PYTHONPATH": repo})
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    _, got, _ = load(tmp_path / "m")
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, before)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["kill.py", "m"]
