"""The house's floors hold: the index runtime and the text floor never reach jax or a model layer,
no floor imports one above it, and no import circle exists anywhere in `jaxir/`.

Two checks, since either alone can be fooled: a fresh interpreter imports *every* module of
`jaxir.index` and `jaxir.text` (and `jaxir.eval`) and must not have loaded jax/flax/torch; and a
static read of every file of every floor (sub-packages included) finds no import of jax, flax or
a jaxir layer above it, not even one inside a function (a lazy import would pass the first check
until the function runs). The same static read builds the import graph for the circle check.

    python tests/house/test_layers.py     # prints the counts of import circles and upward imports

Not seen: imports by string (the registry's "module:Class" names, importlib f-strings); the root
modules (api.py, fs*.py, cli*.py, ...) belong to no floor.
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
# Floors above the model layer, lowest first (README "Layout": layers only look down). "jaxir.cli"
# also stands for the root modules of the command line (cli_args, cli_export, ...).
UPPER = ("jaxir.methods", "jaxir.interop", "jaxir.training", "jaxir.retrievers", "jaxir.pipeline",
         "jaxir.data", "jaxir.recipes", "jaxir.plan", "jaxir.cli")
# What each floor must never import.
FLOORS = {
    # Settings: any floor may read them, so they reach nothing but jaxir.errors.
    "config": JAX + UPPER + ("jaxir.eval", "jaxir.index", "jaxir.ops", "jaxir.models", "jaxir.text"),
    "text": JAX + UPPER + ("jaxir.eval", "jaxir.index", "jaxir.ops", "jaxir.models"),
    "index": JAX + UPPER + ("jaxir.eval", "jaxir.ops", "jaxir.models"),
    "eval": JAX + UPPER + ("jaxir.index", "jaxir.ops", "jaxir.models"),
    "ops": UPPER + ("jaxir.models",),
    "models": UPPER + ("jaxir.index",),
    "methods": UPPER[1:] + ("jaxir.index",),
    # The PyTorch tools' layouts: above the methods they build, below whatever loads checkpoints.
    "interop": UPPER[2:] + ("jaxir.index",),
    "training": UPPER + ("jaxir.index", "jaxir.models"),
    # Inference never imports the training engine; retrievers only retrieve.
    "retrievers": ("jaxir.training",) + UPPER[4:],
    "pipeline": ("jaxir.training",) + UPPER[5:],
    "data": ("jaxir.training", "jaxir.recipes", "jaxir.plan", "jaxir.cli"),
}


def modules_of(package: str) -> list[str]:
    return sorted(f"jaxir.{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / package)]))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = ("jaxir",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = ROOT) -> list[str]:
    """Every module (or module.name) an `import` / `from ... import` in the file names, at any
    depth, resolved; a `from M import a, b` gives M.a and M.b, which `resolve` maps to modules."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def reaches(name: str, floor: str) -> bool:
    return name == floor or name.startswith(floor + ".") or (floor == "jaxir.cli" and name.startswith("jaxir.cli_"))


def upward_imports(root: Path = ROOT) -> list[tuple[str, str]]:
    """(file, imported name) for every import of a floor above the file's own."""
    return [(str(p.relative_to(root)), n) for floor, banned in sorted(FLOORS.items())
            for p in sorted((root / floor).rglob("*.py")) for n in imported_names(p, root)
            if any(reaches(n, f) for f in banned) and not reaches(n, f"jaxir.{floor}")]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the jaxir modules it imports (a name resolves to its longest module prefix)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}

    def resolve(name):
        while name and name not in files:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name
    return {m: {t for n in imported_names(p, root) if (t := resolve(n)) and t != m} for m, p in files.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1; stack.append(start); on.add(start)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1; stack.append(w); on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_no_module_of_a_floor_imports_upward_even_lazily(floor):
    bad = [(f, n) for f, n in upward_imports() if f.startswith(floor + "/")]
    assert not bad, f"jaxir/{floor} reaches above its floor: {bad}"
    assert list((ROOT / floor).glob("*.py")), floor


def test_no_import_circle_anywhere():
    assert import_circles(import_graph()) == []


def test_the_circle_check_sees_a_circle_through_a_lazy_relative_import(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "a.py").write_text("from .b import f\n")
    (tmp_path / "index" / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "index" / "c.py").write_text("from jaxir.index.a import f\n")
    assert import_circles(import_graph(tmp_path)) == [["jaxir.index.a", "jaxir.index.b", "jaxir.index.c"]]


def test_importing_every_index_text_and_eval_module_loads_no_jax():
    mods = modules_of("index") + modules_of("text") + modules_of("eval")
    assert "jaxir.index.sparse_search" in mods and "jaxir.text.tokenize" in mods
    code = (f"import importlib, sys\nfor m in {mods!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch', 'optax'))\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cli_floor_covers_its_root_modules():
    assert reaches("jaxir.cli.main", "jaxir.cli") and reaches("jaxir.cli_export", "jaxir.cli")
    assert not reaches("jaxir.client", "jaxir.cli") and not reaches("jaxir.config.options", "jaxir.cli")


def test_the_static_check_sees_a_lazy_import_in_a_subpackage(tmp_path):
    (tmp_path / "models" / "sub").mkdir(parents=True)
    f = tmp_path / "models" / "sub" / "bad.py"
    f.write_text("def f():\n    from ...methods import colbert\n    import jax.numpy\n")
    assert imported_names(f, tmp_path) == ["jaxir.methods.colbert", "jax.numpy"]
    assert f in list((tmp_path / "models").rglob("*.py"))


if __name__ == "__main__":
    circles, upward = import_circles(import_graph()), upward_imports()
    print(f"import circles: {len(circles)}  upward imports: {len(upward)}")
    for item in circles + upward:
        print("  ", item)
