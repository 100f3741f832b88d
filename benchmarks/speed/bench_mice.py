"""Rerank latency side by side in one process, same BM25 candidates: the full cross-encoder vs
MICE over precomputed document states vs ColBERT exact MaxSim (from its index's token vectors).

Each query's BM25 top `--depth` are reranked by every system, one query per call, the systems'
order alternating by query; a query's time covers what a search would do per query: the
cross-encoder tokenizes and runs all (query, document) pairs, MICE runs the query's layers
1..l_f once and the interaction layers over the stored states of all candidates (one jitted
call), ColBERT encodes the query and scores the candidates' token vectors. The first query of
each system compiles and is not timed. Every `--mice CKPT STATES` is one MICE (named by its
fusion layer l_f); `--mice-layers 4 5` adds the first with layers dropped (L' = 4, 5) on the
same states; `--mice-kv-index DIR` adds the first over stored keys/values.

    python -m benchmarks.speed.bench_mice --ce runs/ce-scifact \\
        --mice runs/mice-scifact/mice runs/indexes/scifact-mice \\
        --colbert runs/short-colbert/colbert --colbert-index runs/indexes/scifact-colbert-short \\
        [--mice-layers 4 5] [--mice-kv-index DIR] [--queries 30] [--depth 100]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import BEIR
from jaxir.fs import INDEX_CACHE

DEFAULT_DATA = BEIR / "scifact"


def systems_of(args) -> dict:
    """name -> reranker, all opened through the registry as `jaxir eval` opens them."""
    from jaxir.retrievers.registry import get_retriever

    def mice(ckpt, index, **extra):
        return get_retriever("mice", checkpoint=ckpt, alpha=1.0, **extra).open_reranker(index)

    out = {"cross-encoder": get_retriever("cross-encoder", checkpoint=args.ce, alpha=1.0).open_reranker(None)}
    for i, (ckpt, index) in enumerate(args.mice):
        r = mice(ckpt, index)
        name = f"mice-lf{r.config.fusion_layer}"
        out[name] = r
        if i == 0:
            first = name
            for layers in args.mice_layers:
                # Layers dropped at rerank time from a model trained with all of them.
                out[f"{name}-L{layers}"] = mice(ckpt, index, num_layers=layers, untrained_layers=True)
            if args.mice_kv_index:
                out[f"{name}-kv"] = mice(ckpt, args.mice_kv_index)
    if args.colbert:
        out["colbert-maxsim"] = get_retriever("colbert-rerank", checkpoint=args.colbert,
                                              uncompressed=True).open_reranker(args.colbert_index)
    return out, first


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--ce", required=True, help="cross-encoder folder")
    ap.add_argument("--mice", nargs=2, action="append", required=True, metavar=("CKPT", "STATES"),
                    help="a MICE model folder and its document states (jaxir index --method mice); "
                         "repeat for other fusion layers")
    ap.add_argument("--mice-kv-index", default=None, help="the first MICE's states with keys/values "
                                                          "(--precompute-kv)")
    ap.add_argument("--mice-layers", type=int, nargs="*", default=[],
                    help="also the first MICE with L' layers (last interaction layers dropped)")
    ap.add_argument("--colbert", default=None, help="ColBERT model folder")
    ap.add_argument("--colbert-index", default=None, help="its index, built with --uncompressed")
    ap.add_argument("--queries", type=int, default=30, help="test queries timed (the first N)")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--cache", default=INDEX_CACHE, help="where the BM25 index is built or reused")
    ap.add_argument("--output-json", default=None)
    args = ap.parse_args(argv)

    from jaxir.eval.beir import load_beir
    from jaxir.pipeline.built_from import index_for
    from jaxir.retrievers.registry import get_retriever

    data = load_beir(args.data, "test")
    bm25 = get_retriever("bm25")
    bm25_dir, _ = index_for(bm25, data, None, Path(args.cache))
    qids = list(data.queries)[: args.queries + 1]  # +1: the untimed warm-up query
    texts = [data.queries[q] for q in qids]
    hits = bm25.open(bm25_dir).search(texts, args.depth)
    systems, first = systems_of(args)
    lat = {name: [] for name in systems}
    for i, (query, (ids, fs)) in enumerate(zip(texts, hits)):
        ids = [str(d) for d in ids]
        docs_text = [data.text_of(d) for d in ids]
        names = list(systems) if i % 2 == 0 else list(systems)[::-1]
        for name in names:
            r = systems[name]
            docs = ids if getattr(r, "takes_doc_ids", False) else docs_text
            start = time.perf_counter()
            scores = r.rerank_many([query], [docs], [list(fs)])[0]
            elapsed = time.perf_counter() - start
            assert len(scores) == len(ids)
            if i:  # query 0 compiles
                lat[name].append(elapsed)
        print(f"query {i}/{len(texts) - 1}: " + ", ".join(f"{n} {1e3 * lat[n][-1]:.0f} ms" for n in systems if lat[n]),
              flush=True)
    report = {"data": args.data, "queries": len(texts) - 1, "depth": args.depth,
              "candidates_per_query": float(np.mean([len(h[0]) for h in hits]))}
    for name in systems:
        report[f"{name}_ms_median"] = 1e3 * float(np.median(lat[name]))
        report[f"{name}_ms_p99"] = 1e3 * float(np.percentile(lat[name], 99))
    base = report["cross-encoder_ms_median"]
    for name in systems:
        if name != "cross-encoder":
            report[f"speedup_{name}_over_cross-encoder"] = base / report[f"{name}_ms_median"]
    if "colbert-maxsim" in systems:
        report[f"{first}_over_colbert-maxsim"] = report[f"{first}_ms_median"] / report["colbert-maxsim_ms_median"]
    for key, value in report.items():
        print(f"{key:44s} {value:.4g}" if isinstance(value, float) else f"{key:44s} {value}")
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
