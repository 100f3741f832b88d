"""Where a model folder is: a `--checkpoint` names the folder itself or a recipe's output folder.

Every recipe saves its model in `OUT/<method>/` (`runs/ce/cross-encoder`, `runs/sparse/sparse`);
the loaders, the content digests that key caches, and `jaxir export-model` all accept `OUT` for
it through this one rule. No jax here: the digests run in the index floor's callers.
"""
from __future__ import annotations

from pathlib import Path

MODEL_FILE = "model.json"


def model_folder(path: str | Path, method: str | None = None) -> Path:
    """`path` itself when it holds a model.json (or is no folder: its loader says what is
    missing); else its `<method>/` subfolder when that holds one, else its only subfolder that
    does (several, or none: `path`, and the loader names what is missing)."""
    path = Path(path)
    if (path / MODEL_FILE).is_file() or not path.is_dir():
        return path
    if method is not None and (path / method / MODEL_FILE).is_file():
        return path / method
    found = [p for p in sorted(path.iterdir()) if p.is_dir() and (p / MODEL_FILE).is_file()]
    return found[0] if len(found) == 1 else path
