"""`jaxir demo | eval | index | search`: argument parsing and dispatch only."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from jaxir.cli_types import true_false

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the backbone is local; never reach for a hub

METHODS = ["bm25", "dense", "colbert", "sparse"]
RERANKERS = ["cross-encoder"]
RECIPES = {"cross-encoder": "cross_encoder", "colbert": "colbert", "sparse": "sparse"}
DEMO_METHODS = ["bm25", "dense"]
# Index manifests name the runtime format; map it back to the retriever that reads it.
INDEX_METHODS = {"bm25": "bm25", "dense": "dense", "colbert-plaid": "colbert", "learned_sparse": "sparse"}
OPTION_NAMES = ("model", "analyzer", "max_length", "batch_size", "checkpoint", "nbits", "exhaustive",
                "uncompressed", "ncells", "ndocs", "centroid_score_threshold", "idf", "top_k", "dtype",
                "doc_windows", "min_idf", "head_scale", "prior_stem")


def _add_search_options(p: argparse.ArgumentParser) -> None:
    """Options that change how an index is searched (not how it is built)."""
    p.add_argument("--exhaustive", action="store_true", default=None,
                   help="colbert: exact MaxSim over all decompressed docs instead of PLAID")
    p.add_argument("--uncompressed", action="store_true", default=None,
                   help="colbert: keep (index) / search (eval) an fp16 copy of the token vectors")
    p.add_argument("--ncells", type=int, help="colbert PLAID: centroids probed per query token")
    p.add_argument("--ndocs", type=int, help="colbert PLAID: candidates kept after stage 2")
    p.add_argument("--centroid-score-threshold", type=float, dest="centroid_score_threshold")


def _add_method_options(p: argparse.ArgumentParser, extra_methods=()) -> None:
    p.add_argument("--method", choices=METHODS + list(extra_methods), required=True)
    p.add_argument("--checkpoint", help="trained model folder (colbert, sparse, cross-encoder)")
    p.add_argument("--idf", help="sparse: idf.json for query weights (default: checkpoint's or corpus)")
    p.add_argument("--top-k", type=int, dest="top_k", help="sparse: keep the top-k terms per document")
    p.add_argument("--dtype", choices=["uint8", "float16", "float32"], help="sparse: posting weights")
    p.add_argument("--doc-windows", type=int, dest="doc_windows",
                   help="sparse: encode up to this many windows of --max-length tokens per document")
    p.add_argument("--min-idf", type=float, dest="min_idf",
                   help="sparse: tokens with idf <= this are neither stored nor scored (default 0)")
    p.add_argument("--head-scale", type=float, dest="head_scale",
                   help="sparse with a lexical prior: index prior + this x the head's weights (default 1)")
    p.add_argument("--prior-stem", dest="prior_stem", type=true_false,
                   help="sparse with a lexical prior: true/false, stem the prior's document side")
    p.add_argument("--nbits", type=int, choices=[1, 2, 4], help="colbert residual bits (default 2)")
    _add_search_options(p)
    p.add_argument("--model", help="local Hugging Face BERT folder (default: embedded all-MiniLM-L6-v2)")
    p.add_argument("--analyzer", choices=["word", "wordpiece"], help="BM25 tokens (default word)")
    p.add_argument("--max-length", type=int, dest="max_length", help="tokens per document")
    p.add_argument("--batch-size", type=int, dest="batch_size")


def _method_options(args) -> dict:
    return {k: getattr(args, k, None) for k in OPTION_NAMES}


def cmd_eval(args) -> None:
    from jaxir.pipeline.evaluate import eval_method, format_table

    if args.method in RERANKERS:
        from jaxir.pipeline.rerank import eval_rerank

        if not args.checkpoint:
            raise FileNotFoundError(f"--method {args.method} needs --checkpoint")
        result = eval_rerank(args.data, args.split, first_stage=args.rerank, depth=args.depth,
                             checkpoint=args.checkpoint, alpha=args.alpha, k=args.k,
                             index_dir=args.index, cache=Path(args.cache), run_path=args.run,
                             output_json=args.output_json)
        print(format_table([result]))
        return
    result = eval_method(args.method, args.data, split=args.split, k=args.k, index_dir=args.index,
                         cache=Path(args.cache), run_path=args.run, output_json=args.output_json,
                         **_method_options(args))
    print(format_table([result]))
    print(json.dumps(result["timing"]))


def cmd_index(args) -> None:
    from jaxir.eval.beir import load_beir
    from jaxir.pipeline.evaluate import build_or_reuse
    from jaxir.pipeline.retrievers import get_retriever

    dataset = load_beir(args.data, split=args.split)
    out, secs = build_or_reuse(get_retriever(args.method, **_method_options(args)), dataset, Path(args.out))
    print(f"indexed {len(dataset.corpus)} documents of {dataset.name} into {out} in {secs:.1f}s")


def cmd_search(args) -> None:
    from jaxir.eval.runs import write_trec
    from jaxir.index.store import load_index
    from jaxir.pipeline.evaluate import run_search
    from jaxir.pipeline.queries import read_queries
    from jaxir.pipeline.retrievers import get_retriever

    method = load_index(args.index, verify=False).manifest["method"]
    retriever = get_retriever(INDEX_METHODS.get(method, method), **_method_options(args))
    queries = read_queries(args.queries, split=args.split)
    run, timing = run_search(retriever.open(Path(args.index)), queries, args.k)
    write_trec(args.run, run, tag=f"jaxir-{retriever.name}")
    print(f"searched {len(queries)} queries ({timing['ms_per_query']:.2f} ms/query) -> {args.run}")


def cmd_compare(args) -> None:
    from jaxir.eval.runs import read_trec, topk_overlap

    run, reference = read_trec(args.run), read_trec(args.reference)
    print(f"top-{args.k} overlap of {args.run} with {args.reference}: {topk_overlap(run, reference, args.k):.4f}")
    if args.data:  # effectiveness of both on the judged queries, with a paired significance test
        from jaxir.eval.beir import load_beir
        from jaxir.eval.metrics import evaluate
        from jaxir.eval.significance import compare_per_query

        qrels, metric = load_beir(args.data, args.split).qrels, args.metric.lower()
        (mean_run, rows_run), (mean_ref, rows_ref) = (
            evaluate(r, qrels, metrics=[metric], per_query=True) for r in (run, reference))
        diff, p = compare_per_query(rows_run, rows_ref, metric)
        print(f"{metric}: run {mean_run[metric]:.4f}, reference {mean_ref[metric]:.4f}, "
              f"difference {diff:+.4f} over {len(qrels)} queries, paired randomization p = {p:.4f}")


def cmd_mine(args) -> None:
    from jaxir.data.mine import main_mine

    main_mine(args)


def cmd_teacher(args) -> None:
    from jaxir.data.teacher import main_teacher

    main_teacher(args)


def cmd_tune_alpha(args) -> None:
    from jaxir.recipes.cross_encoder import main_tune_alpha

    main_tune_alpha(args)


def cmd_idf(args) -> None:
    from jaxir.sparse_idf import build_idf_file

    path, n_docs = build_idf_file(args.data, args.out, model=args.model, split=args.split)
    print(f"IDF over {n_docs} documents -> {path}")


def cmd_export(args) -> None:
    from jaxir import export
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.sparse_idf import tokenizer_vocab
    from jaxir.text import load_tokenizer

    tok = load_tokenizer(args.model)
    docs = export.index_documents(SparseIndex.load(args.index, tokenizer=tok), tokenizer_vocab(tok))
    write = {"rank_features": export.write_rank_features,
             "anserini": export.write_json_vector_collection}[args.format]
    write(args.out, docs)
    print(f"exported {args.index} as {args.format} -> {args.out}")


def cmd_train(args, extra: list[str]) -> None:
    import importlib

    from jaxir.parallel import maybe_initialize_distributed

    maybe_initialize_distributed(auto=os.environ.get("JAXIR_DISTRIBUTED") == "auto")
    recipe = importlib.import_module(f"jaxir.recipes.{RECIPES[args.recipe]}")
    recipe.main([*extra, *(["--data", args.data] if args.data else []), "--out", args.out])


def cmd_demo(args) -> None:
    from jaxir.pipeline.evaluate import eval_method, format_table

    out = Path(args.out)
    results = []
    for method in args.methods:
        print(f"== {method} on {args.data} ({args.split})", flush=True)
        results.append(eval_method(method, args.data, split=args.split, cache=out / "indexes",
                                   run_path=out / f"{method}.{args.split}.trec",
                                   output_json=out / f"{method}.{args.split}.json"))
    table = format_table(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"runs, metrics and indexes are in {out}/")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jaxir", description="Neural information retrieval in JAX")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="index, search and evaluate the default systems on a BEIR set")
    p.add_argument("--data", default="scifact", help="BEIR folder or dataset name (downloaded)")
    p.add_argument("--split", default="test")
    p.add_argument("--methods", nargs="+", default=DEMO_METHODS, choices=METHODS)
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("eval", help="evaluate one method (or a reranker) on a BEIR split")
    _add_method_options(p, extra_methods=RERANKERS)
    p.add_argument("--rerank", default="bm25", choices=["bm25", "dense"], help="reranker: first stage")
    p.add_argument("--depth", type=int, default=100, help="reranker: candidates reranked per query")
    p.add_argument("--alpha", type=float, help="reranker: weight of the cross-encoder score against the first stage (both min-max; 0 = first stage only)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=100, help="hits kept per query")
    p.add_argument("--index", help="existing or new index folder (default: a cache folder)")
    p.add_argument("--cache", default="runs/indexes")
    p.add_argument("--run", help="also write the TREC run here")
    p.add_argument("--output-json", dest="output_json")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("index", help="build an index for a BEIR corpus")
    _add_method_options(p)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", help="split whose qrels are validated while loading")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_index)

    p = sub.add_parser("compare", help="top-k overlap of two runs; with --data also a metric for "
                                       "each and a paired randomization test of the difference")
    p.add_argument("--run", required=True, help="TREC run (e.g. PLAID)")
    p.add_argument("--reference", required=True, help="TREC run (e.g. exhaustive MaxSim)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--data", help="BEIR folder whose qrels judge both runs")
    p.add_argument("--split", default="test")
    p.add_argument("--metric", default="ndcg@10")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("mine", help="mine hard negatives for a BEIR split (default train)")
    p.add_argument("--retriever", choices=["bm25", "dense"], default="bm25")
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True)
    p.add_argument("--index")
    p.add_argument("--cache", default="runs/indexes")
    p.set_defaults(fn=cmd_mine)

    p = sub.add_parser("teacher", help="score mined train candidates with a trained cross-encoder")
    p.add_argument("--checkpoint", required=True, help="cross-encoder training or reranker folder")
    p.add_argument("--mined", required=True, help="JSONL written by `jaxir mine`")
    p.add_argument("--depth", type=int, default=30, help="mined candidates scored per query")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_teacher)

    p = sub.add_parser("tune-alpha", help="choose a reranker's alpha on held-out train queries")
    p.add_argument("--checkpoint", required=True, help="cross-encoder training or reranker folder")
    p.add_argument("--data", required=True, help="BEIR folder with a train split")
    p.add_argument("--holdout", type=int, default=50, help="held-out train queries")
    p.add_argument("--depth", type=int, default=100, help="BM25 candidates reranked per query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="runs/indexes", help="where the BM25 index is built or reused")
    p.set_defaults(fn=cmd_tune_alpha)

    p = sub.add_parser("idf", help="IDF table (OpenSearch-style idf.json) of a BEIR corpus")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", help="tokenizer folder (default: embedded MiniLM)")
    p.add_argument("--split", default="test", help="split whose qrels are validated while loading")
    p.set_defaults(fn=cmd_idf)

    p = sub.add_parser("export", help="write a learned-sparse index for OpenSearch or Anserini")
    p.add_argument("--index", required=True)
    p.add_argument("--format", choices=["rank_features", "anserini"], required=True)
    p.add_argument("--out", required=True, help="JSON lines (.jsonl or .jsonl.gz)")
    p.add_argument("--model", help="tokenizer folder (default: embedded MiniLM)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("train", help="run a training recipe; other flags go to the recipe "
                                     "(see `python -m jaxir.recipes.NAME --help`)")
    p.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    p.add_argument("--data")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_train, takes_extra=True)

    p = sub.add_parser("search", help="search an index and write a TREC run")
    p.add_argument("--index", required=True)
    p.add_argument("--queries", required=True, help="queries.jsonl[.gz], a TSV (id<TAB>text) or a BEIR folder")
    p.add_argument("--split", default="test", help="with a BEIR folder: which split's queries")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--run", required=True)
    p.add_argument("--model")
    p.add_argument("--checkpoint")
    _add_search_options(p)
    p.set_defaults(fn=cmd_search)
    return ap


def main(argv: list[str] | None = None) -> int:
    from jaxir.errors import JaxirError

    args, extra = build_parser().parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.fn(args, extra) if getattr(args, "takes_extra", False) else args.fn(args)
    except (JaxirError, FileNotFoundError) as e:
        print(f"jaxir {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
