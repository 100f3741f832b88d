"""Peak memory of a streaming PLAID build on a synthetic token stream that is never held whole.

Each size is built in a fresh child process: a seeded generator makes unit token vectors [n, 128]
(clustered around random centres, documents of 100-300 tokens, one rng per document so any
document can be regenerated); the codec is fitted on a document sample (card: min(1 + 16
sqrt(120 N), N) docs, or `--sample-docs`; K = 2^floor(log2(16 sqrt(N_tokens))) clamped, capped at
`--max-centroids`); the batches stream through `compress_stream` and the index is saved. Peak RSS
is VmHWM, reset between phases through /proc/self/clear_refs, so fit / stream / save peaks are
measured apart. Model (bytes above B, the RSS after imports):

    fit:     peak - B         <= c S + J + A
    stream:  peak - after fit <= 2 X + 8 F_b + A_b + 16 MiB                  (`stream_bound_bytes`)
    build:   peak - B         <= c S + J + 2 X + 8 F_b + A + 32 MiB                (`bound_bytes`)

S = sample float32 bytes; c = its copies alive in the fit (NumPy k-means 3: sample, shuffled
training copy, sums; JAX 4.5: sample, training copy, device copy, padded chunks; measured 4.2);
J = what k-means adds beside them and partly leaves resident (JAX: runtime, XLA compile, score
chunks; 256 MiB covers the 60-200 MiB measured; NumPy 16 MiB); X = index bytes (codes 4 +
residuals D nbits / 8 + IVF <= 4 per token + ids), twice while `PlaidIndexBuilder.finish`
concatenates its per-batch lists; F_b = one float32 batch, 8 F_b its working set (the batch, its
concatenation, residuals, int64 bucket indices from searchsorted); A = the [8192, K] float32
score block of `assign_codes` (A_b = [min(batch, 8192), K]). Holding the stream would cost
4 D = 512 B per token.

The card samples min(1 + 16 sqrt(120 N), N) documents: every document while N <= 30,720, so at
SciFact's size (5,183 docs, ~0.97M tokens) S is the whole stream and the fit term dominates;
`--sample-docs` fixes the sample to show the streaming part alone.

    python -m benchmarks.speed.bench_plaid_memory --sizes 250000,500000,1000000,2000000 --sample-docs 500
    python -m benchmarks.speed.bench_plaid_memory --sizes 250000,500000,1000000    # card: all docs
    python -m benchmarks.speed.bench_plaid_memory --child '{"n_tokens": 200000, ...}'   # one build, JSON
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import ROOT

MIB = 1 << 20
SLACK = 32 * MIB  # allocator arenas, Python objects, the doc id strings
SAMPLE_COPIES = {"numpy": 3.0, "jax": 4.5}  # sample-sized buffers alive during the fit
KMEANS_EXTRA = {"numpy": 16 * MIB, "jax": 256 * MIB}  # J: measured, rounded up
ASSIGN_ROWS = 8192  # rows per [rows, K] score block in jaxir.index.codec.assign_codes
BATCH_COPIES = 8  # float32 batch-sized buffers alive at once while a batch is compressed


def proc_status_bytes(key: str) -> int:
    """A /proc/self/status field (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0), so the next phase is measured alone."""
    Path("/proc/self/clear_refs").write_text("5")


@dataclasses.dataclass(frozen=True)
class SyntheticStream:
    """n_tokens unit vectors [n, dim] in documents of min_len..max_len tokens, made on demand.

    Token = normalize(centre[c] + noise * u), c uniform over n_centres (at most one IVF entry per
    token: the worst case), u uniform on [-sqrt 3, sqrt 3]^dim (unit variance; 5x cheaper to draw
    than a normal). Document i comes from rng (seed, i), so the sample and the stream agree
    without either being stored.
    """

    n_tokens: int
    dim: int = 128
    seed: int = 0
    n_centres: int = 4096
    noise: float = 0.05
    min_len: int = 100
    max_len: int = 300

    @functools.cached_property
    def doclens(self) -> np.ndarray:
        """[N] int32 lengths summing to n_tokens (the last document is cut to fit)."""
        rng = np.random.default_rng([self.seed, 1 << 30])
        lens = rng.integers(self.min_len, self.max_len + 1, self.n_tokens // self.min_len + 1)
        cum = np.cumsum(lens)
        last = int(np.searchsorted(cum, self.n_tokens))
        lens = lens[:last + 1].copy()
        lens[last] -= cum[last] - self.n_tokens
        return lens.astype(np.int32)

    @functools.cached_property
    def centres(self) -> np.ndarray:
        c = np.random.default_rng([self.seed, 1 << 31]).standard_normal((self.n_centres, self.dim))
        return (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)

    def doc(self, i: int) -> np.ndarray:
        """Document i's token vectors [doclens[i], dim] float32."""
        rng = np.random.default_rng([self.seed, i])
        n = int(self.doclens[i])
        v = self.centres[rng.integers(self.n_centres, size=n)]
        u = rng.random((n, self.dim), dtype=np.float32) - np.float32(0.5)
        v += np.float32(self.noise * 2 * np.sqrt(3)) * u
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    def sample(self, picks: np.ndarray) -> np.ndarray:
        """The picked documents' vectors, concatenated [sum doclens[picks], dim] (one buffer)."""
        out = np.empty((int(self.doclens[picks].sum()), self.dim), np.float32)
        at = 0
        for i in picks:
            d = self.doc(int(i))
            out[at:at + len(d)] = d
            at += len(d)
        return out

    def batches(self, batch_tokens: int):
        """Yield (doc ids, [docs]) of >= batch_tokens tokens (the last may be smaller)."""
        ids, docs, held = [], [], 0
        for i in range(len(self.doclens)):
            docs.append(self.doc(i))
            ids.append(f"d{i}")
            held += len(docs[-1])
            if held >= batch_tokens:
                yield ids, docs
                ids, docs, held = [], [], 0  # drop this batch before making the next
        if docs:
            yield ids, docs


def keep_every_batch(batches, kept: list):
    """The leak a memory test must catch: a builder that keeps each float batch alive."""
    for batch in batches:
        kept.append(batch)
        yield batch


def capped_estimate(n_tokens: int, max_centroids: int) -> int:
    """n_embeddings_est for fit_codec so K = min(card K, max_centroids) (a power of two)."""
    if max_centroids < 16 or max_centroids & (max_centroids - 1):
        raise ValueError(f"--max-centroids must be a power of two >= 16, got {max_centroids}")
    return min(n_tokens, (max_centroids // 16) ** 2)


def fit(stream: SyntheticStream, cfg: dict):
    """Pass 1: sample documents, fit the codec -> (codec, sample docs, sample tokens)."""
    from jaxir.index import codec as np_codec
    from jaxir.ops.kmeans import num_centroids
    from jaxir.retrievers.colbert_build import fit_codec, sample_doc_indices
    n_docs = len(stream.doclens)
    if cfg["sample_docs"]:
        rng = np.random.default_rng(cfg["seed"])
        picks = np.sort(rng.choice(n_docs, min(cfg["sample_docs"], n_docs), replace=False))
    else:
        picks = sample_doc_indices(n_docs, cfg["seed"])
    sample = stream.sample(picks)
    est = capped_estimate(stream.n_tokens, cfg["max_centroids"])
    if cfg["kmeans"] == "numpy":  # JAX-free; k is clamped to the training vectors inside
        codec = np_codec.fit_codec_numpy(sample, num_centroids(est), cfg["nbits"], seed=cfg["seed"])
    else:
        codec = fit_codec(sample, n_embeddings_est=est, nbits=cfg["nbits"], seed=cfg["seed"])
    return codec, len(picks), len(sample)


def build_once(cfg: dict) -> dict:
    """One build in this process; phase peaks are absolute RSS bytes."""
    from jaxir.retrievers.colbert_build import compress_stream
    stream = SyntheticStream(cfg["n_tokens"], seed=cfg["seed"])
    base = proc_status_bytes("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    codec, sample_docs, sample_tokens = fit(stream, cfg)
    fit_peak, after_fit = proc_status_bytes("VmHWM"), proc_status_bytes("VmRSS")
    reset_peak()
    kept: list = []
    batches = stream.batches(cfg["batch_tokens"])
    index = compress_stream(codec, keep_every_batch(batches, kept) if cfg["leak"] else batches)
    stream_peak = proc_status_bytes("VmHWM")
    reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index", model_fingerprint="synthetic")
        seconds = time.perf_counter() - t0
    save_peak = proc_status_bytes("VmHWM")
    return {**cfg, "num_docs": int(len(stream.doclens)), "num_tokens": int(index.num_tokens),
            "sample_docs": sample_docs, "sample_tokens": sample_tokens,
            "k": int(len(codec.centroids)),
            "index_bytes": int(index.nbytes), "seconds": seconds, "baseline": base,
            "after_fit": after_fit, "fit_peak": fit_peak, "stream_peak": stream_peak,
            "save_peak": save_peak, "peak": max(fit_peak, stream_peak, save_peak)}


def bound_bytes(r: dict, dim: int = 128) -> int:
    """Bound on the whole build's peak - baseline: c S + J + 2 X + 8 F_b + A + 32 MiB."""
    fit = SAMPLE_COPIES[r["kmeans"]] * 4 * dim * r["sample_tokens"] + KMEANS_EXTRA[r["kmeans"]]
    batch, block = 4 * dim * r["batch_tokens"], 4 * ASSIGN_ROWS * r["k"]
    return int(fit) + 2 * r["index_bytes"] + BATCH_COPIES * batch + block + SLACK


def stream_bound_bytes(r: dict, dim: int = 128) -> int:
    """Bound on pass 2's peak over the RSS after the fit: 2 X + 8 F_b + A_b + 16 MiB."""
    block = 4 * min(r["batch_tokens"], ASSIGN_ROWS) * r["k"]
    batch = 4 * dim * r["batch_tokens"]
    return 2 * r["index_bytes"] + BATCH_COPIES * batch + block + 16 * MIB


def start_child(cfg: dict) -> subprocess.Popen:
    """build_once in a fresh interpreter, so VmHWM is this build's alone."""
    return subprocess.Popen([sys.executable, "-m", "benchmarks.speed.bench_plaid_memory", "--child", json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def read_child(proc: subprocess.Popen) -> dict:
    """Wait for a `start_child` process and parse its JSON result."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child build {proc.args[-1]} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    mb = lambda b: f"{b / MIB:,.0f}"  # noqa: E731
    head = ("tokens", "docs", "sample tok", "K", "float32 MB", "index MB", "B/tok", "build s",
            "peak MB", "peak-B MB", "fit/stream/save -B MB", "bound MB", "stream-fit MB",
            "stream bound MB", "holds")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        base, bound, sbound = r["baseline"], bound_bytes(r), stream_bound_bytes(r)
        grew = r["stream_peak"] - r["after_fit"]
        holds = r["peak"] - base <= bound and grew <= sbound
        phases = "/".join(mb(r[p] - base) for p in ("fit_peak", "stream_peak", "save_peak"))
        print(f"| {r['n_tokens']:,} | {r['num_docs']:,} | {r['sample_tokens']:,} | {r['k']} | "
              f"{mb(512 * r['n_tokens'])} | {r['index_bytes'] / MIB:.1f} | "
              f"{r['index_bytes'] / r['n_tokens']:.1f} | {r['seconds']:.1f} | {mb(r['peak'])} | "
              f"{mb(r['peak'] - base)} | {phases} | {mb(bound)} | {mb(grew)} | {mb(sbound)} | "
              f"{'yes' if holds else 'NO'} |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="250000,500000,1000000,2000000",
                   help="comma-separated token counts, one fresh process each")
    p.add_argument("--nbits", type=int, default=2, choices=(1, 2, 4))
    p.add_argument("--batch-tokens", type=int, default=16384)
    p.add_argument("--sample-docs", type=int, default=0,
                   help="documents for the codec (0: the card's min(1 + 16 sqrt(120 N), N))")
    p.add_argument("--max-centroids", type=int, default=1024,
                   help="cap on K (the card's K costs 4-16x the CPU time at these sizes)")
    p.add_argument("--kmeans", choices=("jax", "numpy"), default="jax")
    p.add_argument("--leak", action="store_true", help="keep every float batch (a broken build)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(build_once(json.loads(args.child))), flush=True)
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cfg = {"n_tokens": n, "nbits": args.nbits, "batch_tokens": args.batch_tokens,
               "sample_docs": args.sample_docs, "max_centroids": args.max_centroids,
               "kmeans": args.kmeans, "leak": args.leak, "seed": args.seed}
        rows.append(read_child(start_child(cfg)))
        print(f"built {n:,} tokens in {rows[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
