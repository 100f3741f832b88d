"""Re-runs the silent-wrong-answer probes (stale caches, mismatched indexes, writers that race or
die mid-swap, out-of-range recipe values, readers during a swap, outputs over inputs) through the
real `jaxir` command line, on a small BEIR set cut from SciFact (the first --docs documents and
the test queries judged on them), and prints one row per probe: what came back (exit status,
first stderr line or the metric) and whether it is the right answer. Then the probes of options
checked before heavy work and one-line errors (`tools/probe_validation.py`), in a table of their own.

    python -m benchmarks.tools.probe_reliability [--data ../shared/data/beir/scifact] [--docs 27]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import BEIR, ROOT
from benchmarks.tools.probe_validation import open_beir, print_table, validation_rows

DEFAULT_DATA = BEIR / "scifact"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# SIGKILL just before the n-th os.replace of one index build (4: between the two renames of the swap).
KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
real, calls = os.replace, [0]
def replace(a, b):
    calls[0] += 1
    if calls[0] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
os.replace = replace
from jaxir.eval.beir import load_beir
from jaxir.retrievers.bm25 import BM25Retriever
from jaxir.pipeline.built_from import build_index
build_index(BM25Retriever(k1=0.9), load_beir(sys.argv[1], split="test"), Path(sys.argv[2]))
"""

# Rebuilds one index, alternating between two corpora, for argv[4] seconds; prints the swaps made
# and the two corpora's fingerprints (what a reader may find in the manifest).
SWAP_WRITER = """
import json, sys, time
from pathlib import Path
from jaxir.eval.beir import load_beir
from jaxir.retrievers.bm25 import BM25Retriever
from jaxir.pipeline.built_from import build_index
sets = [load_beir(p, split="test") for p in sys.argv[2:4]]
end, swaps = time.monotonic() + float(sys.argv[4]), 0
while time.monotonic() < end:
    build_index(BM25Retriever(k1=0.9), sets[swaps % 2], Path(sys.argv[1]))
    swaps += 1
print(json.dumps({"swaps": swaps, "corpora": [d.corpus_fingerprint for d in sets]}))
"""

# Loads the index (checksums verified) until the file argv[2] exists; prints loads, errors and the
# corpus fingerprints seen in the loaded manifests.
SWAP_READER = """
import json, os, sys
from jaxir.index.store import load_index
loads, errors, seen = 0, [], set()
while not os.path.exists(sys.argv[2]):
    try:
        seen.add(load_index(sys.argv[1], verify=True).manifest["built_from"]["corpus_sha256"])
        loads += 1
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
print(json.dumps({"loads": loads, "errors": len(errors), "first": errors[:1], "seen": sorted(seen)}))
"""


def jaxir(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxir.cli", *map(str, argv)], env=ENV,
                          capture_output=True, text=True)


def ndcg(proc) -> float:
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| probe"))
    return float(row.split("|")[3])


def first_err(proc) -> str:
    return (proc.stderr.strip().splitlines() or [""])[-1][:150]


def cut(src: Path, dst: Path, n_docs: int) -> Path:
    """The first n_docs documents of src and its test queries judged on them."""
    (dst / "qrels").mkdir(parents=True)
    docs = []
    with open_beir(src, "corpus") as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) == n_docs:
                break
    ids = {d["_id"] for d in docs}
    rows = [r.split("\t") for r in (src / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    rows = [r for r in rows if r[1] in ids]
    qids = {r[0] for r in rows}
    with open_beir(src, "queries") as f:
        queries = [q for q in map(json.loads, f) if q["_id"] in qids]
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (dst / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (dst / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows))
    return dst


def rotate_texts(folder: Path) -> None:
    """Same ids and count, each text moved to the next document."""
    docs = [json.loads(x) for x in (folder / "corpus.jsonl").read_text().splitlines()]
    texts = [(d["title"], d["text"]) for d in docs]
    for d, (title, text) in zip(docs, texts[1:] + texts[:1]):
        d["title"], d["text"] = title, text
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--docs", type=int, default=27)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jaxir-probe-"))
    rows = []

    def row(probe, seen, right):
        rows.append((probe, seen, "yes" if right else "NO"))

    try:
        data = cut(args.data, work / "probe", args.docs)
        other = cut(args.data, work / "other", args.docs)
        rotate_texts(other)
        cache = work / "cache"
        ev = ["eval", "--method", "bm25", "--data", data]
        before = ndcg(jaxir(*ev, "--cache", cache))
        rotate_texts(data)
        after = ndcg(jaxir(*ev, "--cache", cache))
        truth = ndcg(jaxir(*ev, "--cache", work / "fresh"))
        row("1. corpus rewritten in place (same ids and count), eval with the old cache",
            f"nDCG@10 {before:.4f} before, {after:.4f} after (a fresh cache: {truth:.4f})", after == truth)
        shutil.rmtree(data)
        cut(args.data, data, args.docs)

        idx = work / "idx"
        jaxir("index", "--method", "bm25", "--data", data, "--out", idx)
        p = jaxir("eval", "--method", "bm25", "--data", other, "--index", idx)
        row("1. eval --index built from another corpus", f"rc {p.returncode}: {first_err(p)}", p.returncode == 2)
        p = jaxir("eval", "--method", "bm25", "--data", other, "--index", idx, "--allow-corpus-mismatch")
        row("1. the same with --allow-corpus-mismatch", f"rc {p.returncode}: {first_err(p)}",
            p.returncode == 0 and "warning" in p.stderr)

        p = jaxir("index", "--method", "bm25", "--data", data, "--out", idx)
        row("2. index --out an identical index", f"rc {p.returncode}: {p.stdout.strip()[:110]}",
            p.returncode == 0 and "reused" in p.stdout)
        p = jaxir("index", "--method", "bm25", "--data", other, "--out", idx)
        row("2. index --out holding another corpus's index", f"rc {p.returncode}: {first_err(p)}",
            p.returncode == 2)
        p = jaxir("index", "--method", "bm25", "--analyzer", "wordpiece", "--data", data, "--out", idx)
        row("2. index --out with other settings", f"rc {p.returncode}: {first_err(p)}", p.returncode == 2)

        ok = 0
        for trial in range(6):
            new = work / f"race{trial}"
            procs = [subprocess.Popen([sys.executable, "-m", "jaxir.cli", "index", "--method", "bm25",
                                       "--data", str(data), "--out", str(new)], env=ENV,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2)]
            outs = [p.communicate()[0] for p in procs]
            ok += all(p.returncode == 0 for p in procs) and sum("reused" in o for o in outs) == 1
        row("3. two index builds into one new path, 6 trials", f"{ok}/6: both rc 0, one built, one reused", ok == 6)

        run = work / "run.trec"
        procs = [subprocess.Popen([sys.executable, "-m", "jaxir.cli", *map(str, ev), "--cache", str(cache),
                                   "--run", str(run)], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        rcs = [p.wait() for p in procs]
        lines = run.read_text().splitlines()
        row("3. four evals writing one --run", f"rc {rcs}; {len(lines)} lines, one whole run",
            rcs == [0] * 4 and len(set(lines)) == len(lines))

        swap = work / "swap"
        jaxir("index", "--method", "bm25", "--data", data, "--out", swap)
        old = (swap / "manifest.json").read_text()
        killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(data), str(swap), "4"], env=ENV)
        missing = not swap.exists()
        p = jaxir("eval", "--method", "bm25", "--data", data, "--index", swap)
        restored = swap.exists() and (swap / "manifest.json").read_text() == old
        debris = sorted(x.name for x in work.iterdir() if x.name.startswith(".swap.") and not x.name.endswith(".lock"))
        row("3. build killed between the two renames of the swap",
            f"rc {killed.returncode}, target missing {missing}; next eval rc {p.returncode}, old index "
            f"restored {restored}, debris {debris}", missing and p.returncode == 0 and restored and not debris)

        for option, value in [("--fit.batch_size", "0"), ("--fit.steps", "-2"), ("--data.mine_depth", "0")]:
            p = jaxir("train", "--recipe", "colbert", "--data", data, "--out", work / "t", option, value)
            row(f"4. train --recipe colbert {option} {value}", f"rc {p.returncode}: {first_err(p)}",
                p.returncode == 2 and not (work / "t").exists())

        stop = work / "stop"
        reader = subprocess.Popen([sys.executable, "-c", SWAP_READER, str(swap), str(stop)], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        writer = subprocess.run([sys.executable, "-c", SWAP_WRITER, str(swap), str(data), str(other), "5"],
                                env=ENV, capture_output=True, text=True)
        stop.touch()
        got = json.loads(reader.communicate()[0].strip().splitlines()[-1])
        wrote = json.loads(writer.stdout.strip().splitlines()[-1]) if writer.returncode == 0 else {}
        row("5. loads of an index while another process swaps it (5 s)",
            f"{got['loads']} loads, {wrote.get('swaps')} swaps, {got['errors']} errors {got['first']}, "
            f"{len(got['seen'])} corpora seen",
            got["errors"] == 0 and got["loads"] > 0 and wrote.get("swaps", 0) > 1
            and set(got["seen"]) <= set(wrote["corpora"]))

        idx_manifest = (idx / "manifest.json").read_bytes()
        for what, argv, victim in [
            ("mine --out the corpus it reads", ["mine", "--data", data, "--split", "test", "--out",
                                                data / "corpus.jsonl"], data / "corpus.jsonl"),
            ("idf --out the queries file", ["idf", "--data", data, "--out", data / "queries.jsonl"],
             data / "queries.jsonl"),
            ("eval --run the --index's manifest.json", [*ev, "--index", idx, "--run", idx / "manifest.json"],
             idx / "manifest.json"),
        ]:
            before = victim.read_bytes()
            p = jaxir(*argv)
            row(f"6. {what}", f"rc {p.returncode}: {first_err(p)}",
                p.returncode == 2 and victim.read_bytes() == before)
        assert (idx / "manifest.json").read_bytes() == idx_manifest
        checked = validation_rows(work / "validation", args.data, ENV)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| probe | what comes back | right |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print_table(checked)
    if any(r[2] == "NO" for r in rows) or any(r.right == "NO" for r in checked):
        sys.exit(1)


if __name__ == "__main__":
    main()
