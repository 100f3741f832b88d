"""An appended PLAID index against one built from scratch, on a real corpus.

A seeded share of the corpus (`--held-out`, default 20 %) is left out of the first build, whose
codec (centroids, residual buckets) is then fitted on the rest only; `jaxir index --append` adds
the held-out documents with that codec. Both indexes are searched with the same model and PLAID
settings; the script prints nDCG@10 of each (paired randomization p), the appended index's top-10
overlap with the scratch index, and how many of the scratch index's top 10 per query are
appended documents (how much the test leans on them). Times are of this run (encoder included).

    python -m benchmarks.claims.bench_append --data ../shared/data/beir/scifact \\
        --checkpoint runs/colbert-scifact/colbert --out runs/bench-append \\
        [--scratch-index runs/indexes/<scifact colbert index of that checkpoint>] [--held-out 0.2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np


def subset_folder(src: Path, out: Path, keep: set[str]) -> Path:
    """A BEIR folder holding `src`'s queries and qrels and only the documents in `keep`."""
    import gzip

    out.mkdir(parents=True, exist_ok=True)
    corpus = next(f for f in (src / "corpus.jsonl", src / "corpus.jsonl.gz") if f.is_file())
    opener = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rt", encoding="utf-8") as f, open(out / "corpus.jsonl", "w", encoding="utf-8") as g:
        for line in f:
            if line.strip() and json.loads(line)["_id"] in keep:
                g.write(line)
    for name in ("queries.jsonl", "queries.jsonl.gz"):
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    shutil.copytree(src / "qrels", out / "qrels", dirs_exist_ok=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--checkpoint", help="ColBERT model folder (default: the backbone + seeded projection)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--scratch-index", type=Path, help="an index of the whole corpus by the same model")
    ap.add_argument("--held-out", type=float, default=0.2, help="share of documents appended later")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()

    from jaxir.eval.beir import load_beir
    from jaxir.eval.metrics import evaluate
    from jaxir.eval.runs import topk_overlap
    from jaxir.eval.significance import compare_per_query
    from jaxir.pipeline.append import append_at
    from jaxir.pipeline.built_from import index_at
    from jaxir.retrievers.colbert import ColBERTRetriever
    from jaxir.pipeline.search import run_search

    full = load_beir(args.data, split=args.split)
    ids = np.array(full.doc_ids)
    order = np.random.default_rng(args.seed).permutation(len(ids))
    n_late = int(round(args.held_out * len(ids)))
    first = set(ids[order[n_late:]].tolist())
    part = load_beir(subset_folder(args.data, args.out / "first-part", first), split=args.split)
    retriever = ColBERTRetriever(checkpoint=args.checkpoint, nbits=args.nbits)

    t = time.perf_counter()
    appended = args.out / "appended"
    index_at(retriever, part, appended, force=True)
    first_s = time.perf_counter() - t
    added, append_s = append_at(retriever, full, appended)
    scratch, scratch_s = args.scratch_index, 0.0
    if scratch is None:
        scratch = args.out / "scratch"
        t = time.perf_counter()
        index_at(retriever, full, scratch)
        scratch_s = time.perf_counter() - t

    runs = {}
    for name, folder in (("scratch", scratch), ("appended", appended)):
        runs[name], _ = run_search(retriever.open(folder), full.queries, args.k)
    scores = {n: evaluate(r, full.qrels, metrics=["ndcg@10"], per_query=True) for n, r in runs.items()}
    diff, p = compare_per_query(scores["appended"][1], scores["scratch"][1], "ndcg@10")
    late_hits = np.mean([len([d for d in list(r)[:10] if d not in first]) for r in runs["scratch"].values()])
    result = {
        "docs": len(ids), "appended_docs": added, "first_build_docs": len(first),
        "ndcg@10_scratch": scores["scratch"][0]["ndcg@10"], "ndcg@10_appended": scores["appended"][0]["ndcg@10"],
        "difference": diff, "p": p, "top10_overlap_with_scratch": topk_overlap(runs["appended"], runs["scratch"], 10),
        "scratch_top10_from_appended_docs": float(late_hits),
        "first_build_s": first_s, "append_s": append_s, "scratch_build_s": scratch_s,
    }
    print(json.dumps(result, indent=2))
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
