"""The house's floors hold: the index runtime and the text floor never reach jax or a model layer.

Two checks, since either alone can be fooled: a fresh interpreter imports *every* module of
`jaxir.index` and `jaxir.text` (and `jaxir.eval`) and must not have loaded jax/flax/torch; and a
static read of their source finds no import of jax, flax or a jaxir layer above them, not even
one inside a function (a lazy import would pass the first check until the function runs).
"""
import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import jaxir

ROOT = Path(jaxir.__file__).parent
JAX = ("jax", "flax", "optax", "orbax", "torch")
UPPER = ("jaxir.methods", "jaxir.training", "jaxir.retrievers", "jaxir.data", "jaxir.recipes", "jaxir.cli")
# What each floor must never import (README "Layout": layers only look down).
FLOORS = {
    "text": JAX + UPPER + ("jaxir.eval", "jaxir.index", "jaxir.ops", "jaxir.models"),
    "index": JAX + UPPER + ("jaxir.eval", "jaxir.ops", "jaxir.models"),
    "eval": JAX + UPPER + ("jaxir.index", "jaxir.ops", "jaxir.models"),
    "ops": UPPER + ("jaxir.models",),
    "models": UPPER + ("jaxir.index",),
    "methods": UPPER[1:] + ("jaxir.index",),
    "training": UPPER + ("jaxir.index", "jaxir.models"),
    # Inference never imports the training engine.
    "retrievers": ("jaxir.training", "jaxir.data", "jaxir.recipes", "jaxir.cli"),
    "data": ("jaxir.training", "jaxir.recipes", "jaxir.cli"),
}


def modules_of(package: str) -> list[str]:
    return sorted(f"jaxir.{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / package)]))


def imported_names(path: Path) -> list[str]:
    """Every module an `import` / `from ... import` in the file names, at any depth, resolved."""
    package = "jaxir." + path.parent.name
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module)
    return names


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_no_module_of_a_floor_imports_upward_even_lazily(floor):
    bad = [(p.name, n) for p in sorted((ROOT / floor).glob("*.py")) for n in imported_names(p)
           if any(n == f or n.startswith(f + ".") for f in FLOORS[floor])
           and not n.startswith(f"jaxir.{floor}")]
    assert not bad, f"jaxir/{floor} reaches above its floor: {bad}"
    assert list((ROOT / floor).glob("*.py")), floor


def test_importing_every_index_text_and_eval_module_loads_no_jax():
    mods = modules_of("index") + modules_of("text") + modules_of("eval")
    assert "jaxir.index.sparse_search" in mods and "jaxir.text.tokenize" in mods
    code = (f"import importlib, sys\nfor m in {mods!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch', 'optax'))\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_static_check_sees_a_lazy_import(tmp_path):
    (tmp_path / "index").mkdir()
    f = tmp_path / "index" / "bad.py"
    f.write_text("def f():\n    from ..models import hf\n    import jax.numpy\n")
    assert imported_names(f) == ["jaxir.models", "jax.numpy"]
