"""PyLate's own virtual environment for the PLAID benchmark (created once, reused).

PyLate 1.6 pins transformers <= 5.3 and its default backend (fast-plaid) pins a CUDA torch, so it
gets a separate environment: the local CPU torch wheel first, then PyLate without fast-plaid.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".benchvenv-pylate"
TORCH_SPEC = "torch==2.13.0+cpu"  # the local CPU wheel; PyPI only has CUDA builds of this name
# PyLate 1.6's requirements minus fast-plaid, whose wheels pin a CUDA torch (2.11) and have no
# build for torch 2.13; only the vendored Stanford backend (`use_fast=False`) is used here.
PYLATE_DEPS = ["sentence-transformers==5.3.0", "transformers>=4.41.0,<=5.3.0", "datasets>=2.20.0",
               "accelerate>=0.31.0", "pandas>=2.2.1", "ujson==5.12.0", "ninja==1.11.1.4",
               "fastkmeans==0.5.0"]

def ensure_peer_venv(venv: Path = PEER_VENV) -> Path:
    """Create the PyLate environment once: local CPU torch first, then PyLate without fast-plaid."""
    python, marker = venv / "bin" / "python", venv / ".bench-ready"
    if marker.is_file():
        return python
    base = shutil.which("python3.11") or sys.executable
    print(f"creating {venv} (PyLate 1.6 + {TORCH_SPEC}) ...", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pin = venv / "torch-pin.txt"
    pin.write_text(TORCH_SPEC + "\n")  # keeps every later install from replacing torch
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(pin)]
    subprocess.run(pip + [TORCH_SPEC], check=True)
    subprocess.run(pip + ["--no-deps", "pylate==1.6.0"], check=True)
    subprocess.run(pip + PYLATE_DEPS, check=True)
    marker.write_text(TORCH_SPEC + " pylate==1.6.0\n")
    return python
