"""The peer libraries' own virtual environments (created once, reused).

PyLate 1.6 pins transformers <= 5.3 and its default backend (fast-plaid) pins a CUDA torch, so it
gets a separate environment: the local CPU torch wheel first, then PyLate without fast-plaid.
colbert-ai 0.2.22 predates transformers 5 and gets one of its own the same way (its Stanford
PLAID C++ extensions compile on first use; the interop checks use only its encoder). fast-plaid 1.7
gets a third, with the torch it pins. pyserini 1.6 (Lucene through a JVM, `interop/engine_lucene.py`) gets
a fourth: the CPU torch, then pyserini without the web server, MCP, plotting and test packages it
also requires (its search and index commands never import them).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import ROOT

PEER_VENV = ROOT / ".benchvenv-pylate"
COLBERT_VENV = ROOT / ".benchvenv-colbert"
FASTPLAID_VENV = ROOT / ".benchvenv-fastplaid"
PYSERINI_VENV = ROOT / ".benchvenv-pyserini"
TORCH_SPEC = "torch==2.13.0+cpu"  # the local CPU wheel; PyPI only has CUDA builds of this name
# fast-plaid 1.7 ships one wheel per torch and pins torch 2.11.0, of which PyPI has only the CUDA
# build: it imports (and runs on CPU) only with its CUDA libraries installed beside it, in this
# environment alone (about 4 GB).
FASTPLAID_TORCH = "torch==2.11.0"
# PyLate 1.6's requirements minus fast-plaid, whose wheels pin a CUDA torch (2.11) and have no
# build for torch 2.13; only the vendored Stanford backend (`use_fast=False`) is used here.
PYLATE_DEPS = ["sentence-transformers==5.3.0", "transformers>=4.41.0,<=5.3.0", "datasets>=2.20.0",
               "accelerate>=0.31.0", "pandas>=2.2.1", "ujson==5.12.0", "ninja==1.11.1.4",
               "fastkmeans==0.5.0"]
# colbert-ai 0.2.22's setup.py requirements (faiss only for its own index, not needed here).
COLBERT_DEPS = ["transformers>=4.40,<4.57", "ujson", "bitarray", "gitpython", "python-dotenv", "ninja",
                "scipy", "tqdm", "datasets", "flask", "safetensors"]
FASTPLAID_DEPS = ["fastkmeans==0.5.0", "joblib>=1.5.1", "numpy>=1.26.4", "filelock>=3.20.0",
                  "usearch>=2.21.0"]
# pyserini 1.6.0's requirements less flask, fastapi, uvicorn, fastmcp, datasets, matplotlib, pytest
# and Cython (its `pyserini.search.lucene` / `pyserini.index.lucene` commands import none of them);
# openai at the version pyserini 1.6 names: later ones (2.54, 3.x) refuse the empty key pyserini
# builds its client with at import.
PYSERINI_DEPS = ["pyjnius>=1.7.0", "numpy>=2", "scipy", "pandas", "scikit-learn", "tqdm", "pyyaml",
                 "requests", "transformers>=4.57", "onnxruntime>=1.23", "openai==2.12.0",
                 "sentencepiece>=0.2", "tiktoken>=0.12", "pillow>=12"]
PEERS = {"pylate": (PEER_VENV, "pylate==1.6.0", PYLATE_DEPS, TORCH_SPEC),
         "colbert-ai": (COLBERT_VENV, "colbert-ai==0.2.22", COLBERT_DEPS, TORCH_SPEC),
         "fast-plaid": (FASTPLAID_VENV, "fast-plaid==1.7.0.2110", FASTPLAID_DEPS, FASTPLAID_TORCH),
         "pyserini": (PYSERINI_VENV, "pyserini==1.6.0", PYSERINI_DEPS, TORCH_SPEC)}


def peer_python(peer: str) -> Path | None:
    """The peer venv's python if it was made (None otherwise): tests use it when present."""
    venv = PEERS[peer][0]
    return venv / "bin" / "python" if (venv / ".bench-ready").is_file() else None


def ensure_peer_venv(venv: Path = PEER_VENV, peer: str = "pylate") -> Path:
    """Create a peer's environment once: local CPU torch first, then the peer without its deps,
    then its pinned dependencies."""
    _, package, deps, torch_spec = PEERS[peer]
    python, marker = venv / "bin" / "python", venv / ".bench-ready"
    if marker.is_file():
        return python
    base = shutil.which("python3.11") or sys.executable
    print(f"creating {venv} ({package} + {torch_spec}) ...", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pin = venv / "torch-pin.txt"
    pin.write_text(torch_spec + "\n")  # keeps every later install from replacing torch
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(pin)]
    subprocess.run(pip + [torch_spec], check=True)
    subprocess.run(pip + ["--no-deps", package], check=True)
    subprocess.run(pip + deps, check=True)
    marker.write_text(f"{torch_spec} {package}\n")
    return python


def main(argv=None) -> None:
    """python -m benchmarks.harness.peer_venv [pylate] [colbert-ai] [fast-plaid] [pyserini] (default: all)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("peers", nargs="*", metavar="PEER", help=f"one of {', '.join(PEERS)} (default: every one)")
    names = ap.parse_args(argv).peers or list(PEERS)
    if unknown := [n for n in names if n not in PEERS]:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; peers: {', '.join(PEERS)}")
    for name in names:
        print(ensure_peer_venv(PEERS[name][0], name))


if __name__ == "__main__":
    main()
