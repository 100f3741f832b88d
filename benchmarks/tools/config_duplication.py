"""How often a recipe restates a method's settings, at any git revision (the structure issue's
"repeated config blocks" figure).

Counted by reading the source (AST), not by importing it, so old revisions work too:
  restated  recipe dataclass fields whose name is also a field of a method config dataclass
            (`jaxir/methods/*.py`) - the same setting declared twice;
  copied    keyword arguments of the form `name=cfg.name` / `name=r.name` in the recipes - a
            setting copied back by hand from a recipe field into a method config (passing a
            whole nested group, `optim=r.optim`, is not counted).

    python -m benchmarks.tools.config_duplication [--rev 25b1ce2] [--rev HEAD] [--rev WORKTREE]
"""
from __future__ import annotations

import argparse
import ast
import subprocess

from benchmarks import ROOT


def files(rev: str, folder: str) -> dict[str, str]:
    if rev == "WORKTREE":
        return {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / folder).glob("*.py")}
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:{folder}"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {f"{folder}/{n}": subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{folder}/{n}"],
                                            capture_output=True, text=True, check=True).stdout
            for n in names if n.endswith(".py")}


# Nested config groups: passing one whole (`optim=r.optim`) or nesting a method config
# (`Recipe.model: ColBERTConfig`) restates no setting.
GROUPS = {"model", "data", "optim", "fit", "mlm", "tuples"}
CONFIG_NAMES = {"cfg", "config", "r", "c", "d", "rc"}


def dataclass_fields(source: str) -> dict[str, list[str]]:
    """{class name: annotated scalar field names} of the dataclasses in a module (fields typed
    as another *Config / *Data class are nesting, not settings)."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            out[node.name] = [s.target.id for s in node.body
                              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                              and not ast.unparse(s.annotation).endswith(("Config", "Data", "Warmup"))]
    return out


def count(rev: str) -> dict:
    method = {name for src in files(rev, "jaxir/methods").values()
              for cls, fields in dataclass_fields(src).items() if cls.endswith("Config") for name in fields}
    restated, copied = [], 0
    for path, src in files(rev, "jaxir/recipes").items():
        for cls, fields in dataclass_fields(src).items():
            restated += [f"{path}:{cls}.{f}" for f in fields if f in method]
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.keyword) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == node.arg and node.arg not in GROUPS \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id in CONFIG_NAMES:
                copied += 1
    return {"restated": len(restated), "copied": copied, "examples": restated[:6]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", action="append", help="git revision or WORKTREE (repeatable)")
    args = ap.parse_args(argv)
    for rev in args.rev or ["25b1ce2", "WORKTREE"]:
        c = count(rev)
        print(f"{rev:>10}: {c['restated']} recipe fields restate a method-config field, "
              f"{c['copied']} hand copies name=cfg.name; e.g. {c['examples'][:3]}")


if __name__ == "__main__":
    main()
