"""PyLate and colbert-ai, each in its own venv (benchmarks/harness/peer_venv.py): the library writes a
ColBERT from the real MiniLM weights and jaxir imports it; jaxir exports a toy ColBERT and the
library encodes with it. Max abs diff of query and kept document vectors <= 1e-4.

The venvs (about 1.5 GB each) are made by `python -m benchmarks.harness.peer_venv`, not by the test run;
without them these tests skip and say so (benchmarks/interop/interop_parity.py makes them and reports
the same numbers).
"""

import pytest

from benchmarks.harness.peer_venv import peer_python
from benchmarks.interop import interop_parity as ip

pytestmark = pytest.mark.slow


def need(lib: str) -> None:
    if peer_python(lib) is None:
        pytest.skip(f"no {lib} venv: run `python -m benchmarks.harness.peer_venv {lib}` to check parity with it")


@pytest.mark.parametrize("lib", ["pylate", "colbert-ai"])
def test_import_of_a_peer_written_colbert(lib, minilm_dir, tmp_path):
    need(lib)
    diff, written_by = ip.colbert_import_diff(lib, minilm_dir, tmp_path)
    assert written_by.startswith(lib)
    assert diff <= 1e-4


@pytest.mark.parametrize("lib", ["pylate", "colbert-ai"])
def test_peer_reads_a_jaxir_export(lib, tmp_path):
    need(lib)
    diff, read_by = ip.colbert_export_diff(lib, tmp_path)
    assert read_by.startswith(lib)
    assert diff <= 1e-4
