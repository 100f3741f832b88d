"""A resumable plan of command-line steps, for the studies that train, index and compare in
sequence (the sparse teacher grid, the FLOPS modes, the TPU plan table).

A step whose `done` file exists is not run again; a step after a failed one it needs is skipped.
Each step runs from the repository root; its stderr goes to OUT/logs/STEP.log and its wall
seconds and return code to OUT/steps.jsonl.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import ROOT

JAXIR = [sys.executable, "-m", "jaxir.cli"]


def module(name: str) -> list[str]:
    """The command line of a benchmark module, `python -m NAME` (the steps run from ROOT)."""
    return [sys.executable, "-m", name]


@dataclass
class Step:
    name: str
    argv: list[str]
    done: Path  # exists once the step's output is complete (written atomically, last)
    stdout: Path | None = None  # the step's stdout goes here too (a table, an eval line)
    after: list[str] = field(default_factory=list)


def run_step(step: Step, logs: Path, record: Path) -> bool:
    logs.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {step.name}: {' '.join(step.argv[2:] if step.argv[:2] == JAXIR[:2] else step.argv)}",
          flush=True)
    start = time.time()
    with (logs / f"{step.name}.log").open("a") as log:
        proc = subprocess.run(step.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(proc.stdout)
    seconds = time.time() - start
    if proc.returncode == 0 and step.stdout is not None:
        tmp = step.stdout.with_suffix(".tmp")
        tmp.write_text(proc.stdout)
        tmp.replace(step.stdout)
    with record.open("a") as f:
        f.write(json.dumps({"step": step.name, "seconds": round(seconds, 1), "rc": proc.returncode}) + "\n")
    print(f"  {'ok' if proc.returncode == 0 else f'failed (rc {proc.returncode})'} in {seconds / 60:.1f} min"
          + (f"\n{proc.stdout.strip()}" if step.stdout is not None else ""), flush=True)
    return proc.returncode == 0 and step.done.exists()


def run_plan(steps: list[Step], out: Path, dry_run: bool) -> None:
    """Run the steps in order, skipping the done ones and those after a failed step they need."""
    failed: set[str] = set()
    for step in steps:
        if step.done.exists():
            print(f"{step.name}: done ({step.done.relative_to(out)})", flush=True)
        elif set(step.after) & failed:
            print(f"{step.name}: skipped, needs {sorted(set(step.after) & failed)}", flush=True)
            failed.add(step.name)
        elif dry_run:
            print(f"{step.name}: to run: {' '.join(step.argv)}", flush=True)
        elif not run_step(step, out / "logs", out / "steps.jsonl"):
            failed.add(step.name)
    if failed and not dry_run:
        sys.exit(f"failed: {sorted(failed)} (logs in {out / 'logs'})")


def select(steps: list[Step], only: str) -> list[Step]:
    """`--only a,b`: those steps and every step they need, in plan order ("" : all). An unknown
    name exits naming the steps there are."""
    by_name = {s.name: s for s in steps}
    wanted = [n for n in only.split(",") if n]
    if unknown := [n for n in wanted if n not in by_name]:
        sys.exit(f"unknown step(s) {unknown}; steps: {', '.join(by_name)}")
    if not wanted:
        return steps
    need, todo = set(), list(wanted)
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo.extend(by_name[n].after)
    return [s for s in steps if s.name in need]


def add_plan_options(ap) -> None:
    """The options every resumable study takes: --only NAME,... and --dry-run."""
    ap.add_argument("--only", default="", help="comma-separated step names (and what they need)")
    ap.add_argument("--dry-run", action="store_true", help="print the steps still to run, run nothing")

