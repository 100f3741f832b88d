"""Rerun the `quick` rows of benchmarks/RESULTS.md and check each figure.

The `quick` rows are the untrained baselines (BM25 and dense all-MiniLM-L6-v2 on SciFact and
NFCorpus) that a fresh run reproduces in a few minutes. For each one this script runs the row's
`jaxir eval ...` command as `python -m jaxir.cli eval ...` (this interpreter), from the repository
root, with its --output-json pointed at a temporary file; reads nDCG@10 and Recall@100 from that
JSON (`metrics`: `ndcg@10`, `recall@100`); and prints one line per row: expected, got, |diff| and
OK or FAIL (tolerance 1e-4; the figures in RESULTS.md have four decimals). It exits with status 1
if any row fails or any command fails.

    python -m benchmarks.tools.reproduce_quick           # or: make reproduce-quick
    python -m benchmarks.tools.reproduce_quick --list    # the parsed rows and commands; runs nothing

The commands read ../shared/data/beir/{scifact,nfcorpus} relative to the repository root. Only the
standard library is imported here: --list works without jaxir installed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
METRICS = {"nDCG@10": "ndcg@10", "Recall@100": "recall@100"}  # column in RESULTS -> key in the JSON


def cells(line: str) -> list[str]:
    """A markdown table row's cells; a `|` inside backticks stays in its cell."""
    out, cur, code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + [cur.strip()]


def quick_rows(path: Path = RESULTS) -> list[dict]:
    """Every table row whose `check` column reads `quick`, with its header's columns by name."""
    rows, header, lines = [], None, path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = None
        elif i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = cells(line)
        elif header and not line.startswith("|---"):
            row = dict(zip(header, cells(line)))
            if row.get("check") == "quick":
                expected = {m: float(row[m]) for m in METRICS if row.get(m, "").strip()}
                rows.append({"dataset": row["dataset"], "system": row["system"],
                             "command": row["command"].strip("`"), "expected": expected})
    return rows


def argv_for(command: str, output_json: str) -> list[str]:
    """The row's command as this interpreter runs it, writing its JSON to `output_json`."""
    args = shlex.split(command)
    if args[:2] != ["jaxir", "eval"]:
        raise SystemExit(f"not a `jaxir eval` command: {command}")
    kept, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a == "--output-json":
            skip = True
        elif not a.startswith("--output-json="):
            kept.append(a)
    return [sys.executable, "-m", "jaxir.cli", *kept, "--output-json", output_json]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="print the parsed rows; run nothing")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()
    rows = quick_rows()
    if not rows:
        print(f"no `quick` rows in {RESULTS}", file=sys.stderr)
        return 1
    if args.list:
        for r in rows:
            want = ", ".join(f"{m} {v:.4f}" for m, v in r["expected"].items())
            print(f"{r['dataset']} | {r['system']} | {want}\n    {shlex.join(argv_for(r['command'], 'TMP.json'))}")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="reproduce-quick-") as tmp:
        for n, r in enumerate(rows):
            out = Path(tmp) / f"row{n}.json"
            proc = subprocess.run(argv_for(r["command"], str(out)), cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            label = f"{r['dataset']:<9} {r['system'].split(' (')[0]:<22}"
            if proc.returncode != 0 or not out.exists():
                failed += 1
                print(f"{label} FAIL: exit status {proc.returncode}\n{proc.stdout[-2000:]}", flush=True)
                continue
            got = json.loads(out.read_text(encoding="utf-8"))["metrics"]
            parts, ok = [], True
            for m, want in r["expected"].items():
                value = got.get(METRICS[m])
                diff = abs(value - want) if value is not None else float("inf")
                ok &= diff <= args.tolerance
                shown = "nothing" if value is None else f"{value:.6f}"
                parts.append(f"{m} expected {want:.4f} got {shown} |diff| {diff:.6f}")
            failed += not ok
            print(f"{label} {'; '.join(parts)}  {'OK' if ok else 'FAIL'}", flush=True)
    print(f"{len(rows) - failed} of {len(rows)} rows reproduced within {args.tolerance:g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
