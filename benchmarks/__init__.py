"""jaxir's benchmarks, one sub-package per purpose (benchmarks/README.md lists every script).

Run a script as a module from the repository root, `python -m benchmarks.<folder>.<script> ...`:
the root is then on sys.path and the scripts import each other as `benchmarks.<folder>.<module>`.
Standard library only here and in the sub-packages' `__init__`: the peer scripts import this
package from their own virtual environments, where jaxir is not installed.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root
BEIR = ROOT.parent / "shared" / "data" / "beir"  # the local BEIR copy (../shared/data/beir)
