"""Code shape (issue 42, review rules): no file of `jaxir/` is longer than 350 lines, and no
function or method is longer than 60 (from its `def` line to its last line, nested functions
included: `ast`'s end_lineno - lineno + 1). Split what grows past either.

    python tests/house/test_code_shape.py     # prints the longest files and functions
"""
import ast
import sys
from pathlib import Path

import jaxir

ROOT = Path(jaxir.__file__).parent
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60


def file_lengths(root: Path = ROOT) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): len(p.read_text().splitlines()) for p in sorted(root.rglob("*.py"))}


def function_lengths(root: Path = ROOT) -> list[tuple[int, str]]:
    """(lines, "file:line name") of every function and method, longest first."""
    out = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(), filename=str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{p.relative_to(root.parent)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def test_no_file_is_longer_than_the_limit():
    long = {f: n for f, n in file_lengths().items() if n > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines (split them): {long}"


def test_no_function_is_longer_than_the_limit():
    lengths = function_lengths()
    assert len(lengths) > 100  # the walk saw the package
    long = [(n, where) for n, where in lengths if n > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {long}"


def test_the_check_sees_a_long_method_and_a_long_file(tmp_path):
    pkg = tmp_path / "jaxir"
    (pkg / "sub").mkdir(parents=True)
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "sub" / "m.py").write_text("class A:\n    def f(self):\n" + body + "\n" * MAX_FILE_LINES)
    assert function_lengths(pkg)[0] == (MAX_FUNCTION_LINES + 1, "jaxir/sub/m.py:2 f")
    assert file_lengths(pkg)["jaxir/sub/m.py"] == 2 + MAX_FUNCTION_LINES + MAX_FILE_LINES


if __name__ == "__main__":
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"longest files (limit {MAX_FILE_LINES}):")
    for f, n in sorted(file_lengths().items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {n:4d}  {f}")
    print(f"longest functions (limit {MAX_FUNCTION_LINES}):")
    for n, where in function_lengths()[:top]:
        print(f"  {n:4d}  {where}")
