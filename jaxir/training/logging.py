"""Metrics as JSON lines, and a loss-curve PNG drawn from them (matplotlib, Agg backend).

One line per record::

    {"step": 10, "split": "train", "time": 12.3, "loss": 0.71, "lr": 1e-05, ...}

Only process 0 writes, so a multi-host run produces one file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from jaxir.errors import names_file


class MetricsLogger:
    """Appends records to ``path`` (created with its parent folders); resumable runs append."""

    def __init__(self, path: str | Path, *, enabled: bool | None = None):
        self.path = Path(path)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._t0 = time.time()
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            drop_torn_tail(self.path)

    def log(self, step: int, metrics: Mapping[str, Any], *, split: str = "train") -> dict:
        record = {"step": int(step), "split": split, "time": round(time.time() - self._t0, 3)}
        record.update({k: float(v) for k, v in metrics.items()})
        if self.enabled:
            with names_file(self.path), self.path.open("a") as f:  # a full disk names the file
                f.write(json.dumps(record) + "\n")
        return record


def drop_torn_tail(path: Path) -> bool:
    """Cut a last line without its newline: the record a killed run was appending. Resumed runs
    append after whole records only. True if something was cut."""
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with path.open("r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
    return True


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a JSONL metrics file, in order. A torn last record (no newline: its writer
    was killed) is left out; a bad whole line is an error naming it."""
    records = []
    with Path(path).open() as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or not line.endswith("\n"):
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON record ({e.msg})") from None
    return records


def plot_loss_curve(jsonl_path: str | Path, png_path: str | Path, *,
                    metric: str = "loss") -> Path:
    """Draws ``metric`` against step for every split found in the log; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(jsonl_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for split in sorted({r["split"] for r in records}):
        pts = [(r["step"], r[metric]) for r in records
               if r["split"] == split and metric in r and math.isfinite(r[metric])]
        if pts:
            steps, values = zip(*pts)
            ax.plot(steps, values, marker="o" if len(pts) < 30 else None, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
