"""Exported model folders: `<name>_config.json` (a config dataclass) + `params.npz` ('/'-joined keys).

The training engine's orbax checkpoints hold optimizer state for resuming; these small folders
hold only what search and evaluation need, readable without orbax.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxir.errors import CheckpointError

PARAMS_FILE = "params.npz"


def save_model(path: str | Path, config_file: str, config, params) -> Path:
    """Write `config` (a dataclass) as JSON and the params pytree as one .npz."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(str(k.key) for k in kp): np.asarray(v)
            for kp, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(path / PARAMS_FILE, **flat)
    (path / config_file).write_text(json.dumps(dataclasses.asdict(config), indent=1) + "\n")
    return path


def load_model(path: str | Path, config_file: str, make_config: Callable[[dict], object], *,
               what: str):
    """Read (config, params); CheckpointError names the folder and what is missing or wrong."""
    path = Path(path)
    if not (path / config_file).is_file() or not (path / PARAMS_FILE).is_file():
        raise CheckpointError(f"{path} is not a {what} checkpoint (needs {config_file} and {PARAMS_FILE})")
    try:
        config = make_config(json.loads((path / config_file).read_text()))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / config_file}: {e}") from e
    params: dict = {}
    try:
        with np.load(path / PARAMS_FILE) as arrays:
            for key in arrays.files:
                *parents, leaf = key.split("/")
                node = params
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = arrays[key]
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path / PARAMS_FILE} is corrupt: {e}") from e
    return config, params


def check_same_tree(expected, got, where: str, what: str) -> None:
    """Loaded params must match the model's tree (paths and shapes), else CheckpointError."""
    leaves = jax.tree_util.tree_leaves_with_path
    want = {jax.tree_util.keystr(p): np.shape(v) for p, v in leaves(expected)}
    have = {jax.tree_util.keystr(p): np.shape(v) for p, v in leaves(got)}
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))[:4]
        raise CheckpointError(f"{where}: params do not fit the {what} model; differences: {diff}")


def load_or_init(checkpoint, load_checkpoint: Callable, default_config, make_model: Callable, *,
                 overrides: dict, what: str):
    """(model, params): a checkpoint's (tree-checked) or a fresh seeded init of `default_config`.

    `overrides` replace config fields unless None (e.g. a CLI --max-length; 0 is a value).
    """
    params = None
    if checkpoint is not None:
        config, params = load_checkpoint(checkpoint)
    else:
        config = default_config
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    model = make_model(config)
    fresh = model.init(jax.random.PRNGKey(config.seed))
    if params is None:
        return model, fresh
    check_same_tree(fresh, params, str(checkpoint), what)
    return model, params
