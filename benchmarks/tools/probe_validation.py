"""Issue 39 items 7 and 8, re-run through the real `jaxir` command line: a bad option is refused
before any heavy work (parse time, or the model's shapes before any data), and whatever goes
wrong past parsing ends as one line on stderr (a file that is not UTF-8 named with its line, a
full disk named with the file being written, Ctrl-C as rc 130 with the old output kept).
`benchmarks/tools/probe_reliability.py` runs these after its own probes and prints their table.

Each row: the outcome expected, then what came back: the exit status, the stderr line that says
what went wrong, how many lines stderr held and the seconds the command took.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

# Sizes of the tmpfs that plays a full disk: smaller than SciFact's BM25 index (8 MB) and run
# (1.4 MB); room for a cross-encoder's mined negatives and tuples (0.6 MB), not its checkpoint.
FULL_DISK, TRAIN_DISK = "512k", "30m"
# SciFact copied this many times: its BM25 build runs for seconds, long enough to be interrupted.
BIG_COPIES = 10


# The start of jaxir's error line (or argparse's), after any progress bar drawn on the same line.
SAID = re.compile(r"[\w.]+( [\w-]+)*: (error: |interrupted$)")


@dataclasses.dataclass
class Row:
    probe: str
    expected: str
    rc: int | None = None
    line: str = ""
    lines: int = 0
    seconds: float = 0.0
    right: str = "NO"

    def cells(self) -> list[str]:
        rc = "-" if self.rc is None else str(self.rc)
        return [self.probe, self.expected, rc, self.line, str(self.lines), f"{self.seconds:.1f}", self.right]


@dataclasses.dataclass(frozen=True)
class Where:
    work: Path   # the probes' scratch folder (shown as WORK/ in the table)
    env: dict    # the environment that imports this checkout's jaxir


def observe(row: Row, where: Where, rc: int, stderr: str, seconds: float) -> Row:
    """Fill the observed cells: the line naming what went wrong is the one with "error:" (argparse
    prints its usage block above it) or "interrupted", else stderr's first line."""
    lines = stderr.strip().splitlines()  # a progress bar's redraws (\r) count apart here, not below
    said = [x[m.start():] for x in lines if (m := SAID.search(x))]
    row.rc, row.lines, row.seconds = rc, stderr.count("\n"), seconds
    row.line = (said or lines or [""])[0].replace(str(where.work), "WORK")[:160]
    return row


def jaxir(where: Where, row: Row, *argv) -> subprocess.CompletedProcess:
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "jaxir.cli", *map(str, argv)], env=where.env,
                       capture_output=True, text=True)
    observe(row, where, p.returncode, p.stderr, time.monotonic() - t)
    return p


def judge(row: Row, right: bool) -> Row:
    row.right = "yes" if right else "NO"
    return row


def one_error(p: subprocess.CompletedProcess, words: str) -> bool:
    """rc 2, one line saying `words`, no traceback."""
    lines = p.stderr.strip().splitlines()
    return p.returncode == 2 and len(lines) == 1 and words in lines[0]


def usage_error(p: subprocess.CompletedProcess, words: str) -> bool:
    """rc 2 at parse time: argparse's usage, then one error line saying `words`; no traceback."""
    said = [x for x in p.stderr.splitlines() if "error:" in x]
    return (p.returncode == 2 and len(said) == 1 and words in said[0] and "Traceback" not in p.stderr
            and p.stderr.startswith("usage: "))


# (probe, command line after `jaxir`, words of the error, one line only (else argparse's usage too)).
# --data names no folder: an option checked after the data were read would say the folder is missing.
REFUSED = [
    ("train --recipe cross-encoder --optim.lr_multipliers haed=50",
     ["train", "--recipe", "cross-encoder", "--optim.lr_multipliers", "haed=50"],
     "'haed' names no parameter group (groups: bert, head)", True),
    ("train --recipe colbert --fit.best_metric bogus",
     ["train", "--recipe", "colbert", "--fit.best_metric", "bogus"],
     "--fit.best_metric 'bogus': must be left unset: this run evaluates no held-out metric", False),
    ("index --method colbert --nbits 3", ["index", "--method", "colbert", "--nbits", "3"],
     "argument --nbits: must be one of 1, 2, 4, got 3", False),
    ("train --recipe cross-encoder --data.alpha_grid 2,3",
     ["train", "--recipe", "cross-encoder", "--data.alpha_grid", "2,3"],
     "argument --data.alpha_grid: must be <= 1.0, got 2.0 in (2.0, 3.0)", False),
    ("train --recipe cross-encoder --data.alpha_grid 0.5,nan",
     ["train", "--recipe", "cross-encoder", "--data.alpha_grid", "0.5,nan"],
     "argument --data.alpha_grid: must hold finite numbers only, got nan", False),
    ("train --recipe colbert --fit.compute_dtype foo",
     ["train", "--recipe", "colbert", "--fit.compute_dtype", "foo"],
     "argument --fit.compute_dtype: must be one of float32, bfloat16, got 'foo'", False),
    ("index --method dense --batch-size 0", ["index", "--method", "dense", "--batch-size", "0"],
     "argument --batch-size: must be >= 1, got 0", False),
]


def refused_rows(where: Where) -> list[Row]:
    """Item 7: each bad option refused before any data is read (the --data folder is missing) and
    before --out exists."""
    rows = []
    for probe, argv, words, one_line in REFUSED:
        expected = ("rc 2, this one line, before any data is read" if one_line
                    else "rc 2 at parse time: usage + this error line")
        row = Row(f"7. {probe}", f"{expected}: `{words}`")
        out = where.work / "refused"
        p = jaxir(where, row, *argv, "--data", where.work / "no-such-folder", "--out", out)
        ok = one_error(p, words) if one_line else usage_error(p, words)
        rows.append(judge(row, ok and not out.exists()))
    return rows


def _with_bad_byte(path: Path, text: str, line: int) -> Path:
    """`text` with byte 0xe9 (Latin-1 é) at the end of line `line`."""
    rows = text.encode().split(b"\n")
    rows[line - 1] += b"\xe9"
    path.write_bytes(b"\n".join(rows))
    return path


def utf8_rows(where: Where) -> list[Row]:
    """Item 8: a run or qrels file that is not UTF-8 given to `jaxir score`: one line, file:line."""
    run_text, qrels_text = "q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\nq2 Q0 d1 1 1.0 x\n", "q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 1\n"
    work = where.work
    files = {"--run": work / "run.trec", "--qrels": work / "qrels.txt"}
    files["--run"].write_text(run_text)
    files["--qrels"].write_text(qrels_text)
    rows = []
    for which, text in (("--run", run_text), ("--qrels", qrels_text)):
        bad = _with_bad_byte(work / f"bad{which.strip('-')}.txt", text, 2)
        argv = [x for k, v in {**files, which: bad}.items() for x in (k, v)]
        words = f"{bad.name}:2: not UTF-8 (byte 0xe9)"
        row = Row(f"8. score {which} a file with byte 0xe9 on line 2", f"rc 2, one line naming `{words}`")
        rows.append(judge(row, one_error(jaxir(where, row, "score", *argv), words)))
    return rows


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of `size` mounted at `folder` while the block runs: yields None, or why it could
    not be mounted (then the block is skipped by its caller)."""
    folder.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        yield p.stderr.strip() or f"mount rc {p.returncode}"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def full_disk_rows(where: Where, source: Path) -> list[Row]:
    """Item 8 on a disk that fills up (a tmpfs; root only): an index, a run and a checkpoint, each
    one line naming what was being written."""
    with tmpfs(where.work / "full", FULL_DISK) as why:
        if why is not None:
            return [Row("8. a full disk", "skipped", line=f"cannot mount a tmpfs: {why}", right="skip")]
        rows = index_and_run_rows(where, source, where.work / "full")
    with tmpfs(where.work / "full-train", TRAIN_DISK) as why:
        return [*rows, checkpoint_row(where, source, where.work / "full-train") if why is None
                else Row("8. a full disk at a checkpoint", "skipped", line=why, right="skip")]


def index_and_run_rows(where: Where, source: Path, disk: Path) -> list[Row]:
    """Nothing half-written left on the disk, and an old run there still whole."""
    row = Row(f"8. index --method bm25 (SciFact, 8 MB) --out a {FULL_DISK} tmpfs",
              "rc 2, one line: `no space left on device writing IDX`; nothing left on the disk")
    p = jaxir(where, row, "index", "--method", "bm25", "--data", source, "--out", disk / "idx")
    rows = [judge(row, one_error(p, f"no space left on device writing {disk / 'idx'}") and not any(disk.iterdir()))]
    old = disk / "run.trec"
    old.write_text("1 Q0 4983 1 1.0 old\n")
    row = Row(f"8. eval --run (1.4 MB) onto the {FULL_DISK} tmpfs holding an old run",
              "rc 2, one line: `no space left on device writing RUN`; the old run whole, no temp left")
    p = jaxir(where, row, "eval", "--method", "bm25", "--data", source, "--cache", where.work / "cache",
              "--run", old)
    return [*rows, judge(row, one_error(p, f"no space left on device writing {old}")
                         and old.read_text() == "1 Q0 4983 1 1.0 old\n"
                         and sorted(x.name for x in disk.iterdir()) == ["run.trec"])]


def checkpoint_row(where: Where, source: Path, disk: Path) -> Row:
    """A training checkpoint (orbax, its writer threads) that finds the disk full: jaxir's line
    only, none of orbax's or tensorstore's tracebacks (was: ~1,500 lines of them above it)."""
    row = Row(f"8. train --recipe cross-encoder --mode smoke --out a {TRAIN_DISK} tmpfs (the checkpoint, "
              "~270 MB, does not fit)", "rc 2, one error line: `no space left on device writing "
              "OUT/checkpoints`; no traceback (a progress bar above it)")
    out = disk / "ce"
    p = jaxir(where, row, "train", "--recipe", "cross-encoder", "--mode", "smoke", "--data", source, "--out", out)
    said = [x for x in p.stderr.splitlines() if "error:" in x]
    return judge(row, p.returncode == 2 and len(said) == 1 and "Traceback" not in p.stderr
                 and "ERROR:absl" not in p.stderr and f"no space left on device writing {out}/checkpoints" in said[0])


def open_beir(folder: Path, stem: str):
    """A BEIR file, plain (`corpus.jsonl`) or gzipped (`corpus.jsonl.gz`)."""
    plain = folder / f"{stem}.jsonl"
    return open(plain) if plain.is_file() else gzip.open(folder / f"{stem}.jsonl.gz", "rt")


def big_corpus(source: Path, dst: Path, copies: int) -> Path:
    """`source`'s corpus `copies` times over (ids suffixed -0, -1, ...), with its queries and its
    test qrels on the first copy."""
    (dst / "qrels").mkdir(parents=True)
    with open_beir(source, "corpus") as f:
        docs = [json.loads(line) for line in f]
    with open(dst / "corpus.jsonl", "w") as f:
        for k in range(copies):
            f.writelines(json.dumps({**d, "_id": f"{d['_id']}-{k}"}) + "\n" for d in docs)
    with open_beir(source, "queries") as f:
        (dst / "queries.jsonl").write_text(f.read())
    head, *rows = (source / "qrels" / "test.tsv").read_text().splitlines()
    rows = [r.split("\t") for r in rows]
    (dst / "qrels" / "test.tsv").write_text(head + "\n" + "".join(f"{q}\t{d}-0\t{g}\n" for q, d, g in rows))
    return dst


def interrupt_row(where: Where, source: Path) -> Row:
    """Item 8: SIGINT to `jaxir index --force` at least 1 s into building over an existing index:
    rc 130, one line, the old index byte for byte, no temp or lock left beside it."""
    row = Row(f"8. SIGINT to index --force (SciFact x{BIG_COPIES}) >= 1 s in, over an index",
              "rc 130, one line `jaxir index: interrupted`; the old index whole, nothing beside it")
    work, env = where.work, where.env
    place = work / "ctrl-c"
    place.mkdir()
    out = place / "idx"
    subprocess.run([sys.executable, "-m", "jaxir.cli", "index", "--method", "bm25", "--data", source,
                    "--out", out], env=env, capture_output=True, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    big = big_corpus(source, work / "big", BIG_COPIES)
    t = time.monotonic()
    # SIG_DFL: a child inherits an ignored SIGINT (a background shell job), and Python then raises
    # no KeyboardInterrupt; Ctrl-C at a terminal always finds the default.
    proc = subprocess.Popen([sys.executable, "-m", "jaxir.cli", "index", "--method", "bm25", "--data", str(big),
                             "--out", str(out), "--force"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupt the build itself: its temp folder beside --out exists, and a second has passed.
    while proc.poll() is None and (time.monotonic() - t < 1 or not list(place.glob(".idx.tmp-*"))):
        time.sleep(0.01)
    sent, at = proc.poll() is None, time.monotonic() - t
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    observe(row, where, proc.returncode, stderr, time.monotonic() - t)
    row.probe += f", sent at {at:.1f} s"
    kept = {p.name: p.read_bytes() for p in out.iterdir()} == before
    return judge(row, sent and proc.returncode == 130 and stderr == "jaxir index: interrupted\n"
                 and stdout == "" and kept and sorted(x.name for x in place.iterdir()) == ["idx"])


def validation_rows(work: Path, source: Path, env: dict) -> list[Row]:
    """Every item 7-8 probe, in the issue's order, in `work`; `source`: SciFact's BEIR folder."""
    work.mkdir(parents=True, exist_ok=True)
    where = Where(work, env)
    return [*refused_rows(where), *utf8_rows(where), *full_disk_rows(where, source), interrupt_row(where, source)]


def print_table(rows: list[Row]) -> None:
    print("| probe | expected | rc | stderr says | stderr lines | s | right |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r.cells()) + " |")
