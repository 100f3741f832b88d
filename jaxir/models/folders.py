"""Where a model folder is: a `--checkpoint` names the folder itself or a recipe's output folder.

Every recipe saves its model in `OUT/<method>/` (`runs/ce/cross-encoder`, `runs/sparse/sparse`),
named by the method its model.json records; the loaders, the content digests that key caches and
`jaxir export-model` accept `OUT` for it through this one rule. Any other subfolder holding a
model (the sparse recipe's `mlm-params/` warm-up) is never taken for it. No jax here: the digests
run in the index floor's callers.
"""
from __future__ import annotations

import json
from pathlib import Path

MODEL_FILE = "model.json"


def model_folder(path: str | Path, method: str | None = None) -> Path:
    """`path` itself when it holds a model.json (or is no folder: its loader says what is
    missing); else its subfolder named by the method the subfolder's model.json records (that
    `method`, when given), when exactly one such exists; else `path` (its loader names what is
    missing)."""
    path = Path(path)
    if (path / MODEL_FILE).is_file() or not path.is_dir():
        return path
    found = [p for p in sorted(path.iterdir())
             if (method is None or p.name == method) and _recorded_method(p) == p.name]
    return found[0] if len(found) == 1 else path


def _recorded_method(folder: Path) -> str | None:
    try:
        return json.loads((folder / MODEL_FILE).read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None
