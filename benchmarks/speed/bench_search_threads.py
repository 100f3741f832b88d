"""Queries per second of the NumPy runtime with 1 thread vs several (`--threads N`), same results.

For a ColBERT PLAID index (the queries encoded once, outside the timing) and BM25 over the same
corpus, each batch of test queries is searched with every thread count in turn, the order rotating
per round; the table gives queries/s (median over rounds) and the ratio to one thread, and the
script fails if any thread count returns other hits than one thread.

    python -m benchmarks.speed.bench_search_threads --data ../shared/data/beir/scifact \\
        --checkpoint runs/colbert-scifact/colbert --index runs/indexes/<scifact colbert index> \\
        [--threads 1,2] [--rounds 5] [--k 10]

BLAS stays at one thread (OPENBLAS/OMP/MKL_NUM_THREADS=1, set before NumPy loads) so the pool is
the only parallelism measured.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def time_batches(search, threads: list[int], rounds: int) -> dict[int, list[float]]:
    """{threads: [seconds of one full batch per round]}; each round runs every count once."""
    out = {t: [] for t in threads}
    for r in range(rounds):
        for t in threads[r % len(threads):] + threads[:r % len(threads)]:
            start = time.perf_counter()
            search(t)
            out[t].append(time.perf_counter() - start)
    return out


def same_hits(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def report(name: str, n_queries: int, secs: dict[int, list[float]]) -> list[dict]:
    base = n_queries / statistics.median(secs[min(secs)])
    rows = []
    for t, s in secs.items():
        qps = n_queries / statistics.median(s)
        rows.append({"engine": name, "threads": t, "queries_per_s": round(qps, 1),
                     "ratio_to_1": round(qps / base, 2)})
        print(f"| {name} | {t} | {qps:.1f} | {qps / base:.2f}x |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--checkpoint", help="the ColBERT model folder the index was built with "
                                         "(default: the backbone + seeded projection)")
    ap.add_argument("--split", default="test", help="whose queries are searched")
    ap.add_argument("--index", required=True, type=Path, help="its PLAID index folder")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    threads = sorted({int(t) for t in args.threads.split(",")})

    from jaxir.eval.beir import load_beir
    from jaxir.index.bm25 import BM25Index
    from jaxir.retrievers.colbert import ColBERTRetriever

    data = load_beir(args.data, split=args.split)
    texts = list(data.queries.values())
    searcher = ColBERTRetriever(checkpoint=args.checkpoint, progress=False).open(args.index)
    encoded = np.stack(searcher.model.encode_query_texts(searcher.params, texts, progress=False))
    index = searcher.index
    print(f"{len(texts)} queries, {index.num_docs} documents, {index.num_tokens} token vectors, "
          f"{os.cpu_count()} cores")
    print("| engine | threads | queries/s | vs 1 thread |\n|---|---|---|---|")

    def plaid(t):
        return index.search_batch(encoded, args.k, threads=t)

    reference = plaid(1)
    for t in threads:
        got = plaid(t)
        assert same_hits(got[1], reference[1]) and same_hits(got[0], reference[0]), f"{t} threads differ"
    rows = report("jaxir PLAID", len(texts), time_batches(plaid, threads, args.rounds))

    bm25 = BM25Index.build(data.doc_texts(), doc_ids=data.doc_ids)
    ref = bm25.search_batch(texts, args.k, threads=1)
    for t in threads:
        got = bm25.search_batch(texts, args.k, threads=t)
        assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(got, ref)), f"bm25 {t} threads differ"
    rows += report("jaxir BM25", len(texts),
                   time_batches(lambda t: bm25.search_batch(texts, args.k, threads=t), threads, args.rounds))
    print("every thread count returned one thread's hits exactly")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
