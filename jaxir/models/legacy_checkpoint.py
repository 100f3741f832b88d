"""Model folders of jaxir 0.1, read so that trained checkpoints outlive the format change.

  npz layout       params.npz ('/'-joined keys) + <name>_config.json      (ColBERT, sparse)
  reranker layout  <dir>/<step>/state (orbax {"params": ...}) + <dir>/<step>/meta/metadata (JSON
                   with the model description as "config")                (cross-encoder)
`read_info` describes such a folder as a model.json would (with "legacy" set); `read_params`
returns its params. Saving a loaded model again (e.g. `CrossEncoderReranker.save`) writes the
current format.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError

NPZ_PARAMS = "params.npz"
NPZ_CONFIG_FILES = {"colbert_config.json": "colbert", "sparse_config.json": "sparse"}
RERANKER_EXPORT = "reranker"  # 0.1 training folders held their export here


def _reranker_step(path: Path) -> Path | None:
    steps = sorted((p for p in path.iterdir() if p.name.isdigit() and (p / "meta" / "metadata").is_file()),
                   key=lambda p: int(p.name))
    return steps[-1] if steps else None


def read_info(path: Path) -> dict | None:
    """The model.json equivalent of a 0.1 folder, or None when `path` is not one."""
    for name, method in NPZ_CONFIG_FILES.items():
        if (path / name).is_file():
            if not (path / NPZ_PARAMS).is_file():
                raise CheckpointError(f"{path} has {name} but no {NPZ_PARAMS}: the checkpoint is incomplete")
            try:
                config = json.loads((path / name).read_text())
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{path / name} is not valid JSON: {e}") from e
            return {"method": method, "config": config, "extra": {}, "legacy": "npz"}
    if (path / RERANKER_EXPORT).is_dir():
        path = path / RERANKER_EXPORT
    step = _reranker_step(path)
    if step is None:
        return None
    try:
        meta = json.loads((step / "meta" / "metadata").read_text())
        described = meta["config"]
        return {"method": described["method"], "config": described["model"],
                "extra": {"bert": described.get("bert")}, "legacy": "reranker", "step": str(step)}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{step}: unreadable 0.1 reranker metadata: {e}") from e


def read_params(path: Path, info: dict, target):
    """Params of a 0.1 folder described by `info` (from `read_info`); `target` is the model's tree."""
    if info["legacy"] == "npz":
        return _read_npz(path / NPZ_PARAMS)
    return _read_reranker(Path(info["step"]), target)


def _read_npz(file: Path) -> dict:
    params: dict = {}
    try:
        with np.load(file) as arrays:
            for key in arrays.files:
                *parents, leaf = key.split("/")
                node = params
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = arrays[key]
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{file} is corrupt: {e}") from e
    return params


def _read_reranker(step: Path, target):
    from jaxir.models.saved_model import restore_tree

    return restore_tree(step / "state", {"params": target})["params"]
