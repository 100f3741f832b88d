"""The parser of each `jaxir` command, one function per command (`jaxir.cli` pairs each with the
function that runs it). Method options come from the registered retrievers' fields
(`add_method_options`), so a new retriever field is a new option with its help."""
from __future__ import annotations

import argparse

from jaxir import cli_args as check
from jaxir.fs import INDEX_CACHE

DEMO_METHODS = ["bm25", "dense"]


def _methods() -> tuple[list[str], list[str], list[str]]:
    """(first-stage, reranker, indexed) method names of the registry."""
    from jaxir.retrievers.registry import first_stage_methods, indexed_methods, rerank_methods

    return first_stage_methods(), rerank_methods(), indexed_methods()


def add_method_options(p: argparse.ArgumentParser, methods: list[str]) -> None:
    """One option per field of the methods' retrievers (`jaxir.retrievers.registry`): a new
    retriever field is a new option, with its help; options shared by methods appear once."""
    from jaxir.config.options import field_help, field_option
    from jaxir.retrievers.registry import options_of, retriever_class

    seen: dict[str, list[str]] = {}
    for method in methods:
        for name in options_of(method):
            seen.setdefault(name, []).append(method)
    for name, users in seen.items():
        cls = retriever_class(users[0])
        field = options_of(users[0])[name]
        extra = field_option(cls, field, bare_bool=True) or {"type": str}  # a type the CLI cannot check: text
        helps: dict[str, list[str]] = {}  # {help: its methods}: each may set a field of its own config
        for method in users:
            helps.setdefault(field_help(retriever_class(method), options_of(method)[name]), []).append(method)
        if len(helps) == 1:
            who = "" if len(users) == len(methods) else f" ({', '.join(users)})"
            text = next(iter(helps)) + who
        else:
            text = "; ".join(f"{', '.join(ms)}: {h.removesuffix('.')}" for h, ms in helps.items())
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=text.replace("%", "%%"), **extra)


def add_demo(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("demo", help="index, search and evaluate the default systems on a BEIR set")
    p.add_argument("--data", default="scifact", help="BEIR folder or dataset name (downloaded)")
    p.add_argument("--split", default="test")
    p.add_argument("--methods", nargs="+", default=DEMO_METHODS, choices=first)
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(fn=fn)


def add_eval(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("eval", help="evaluate one method (or a reranker) on a BEIR split")
    p.add_argument("--method", choices=first + rerankers, required=True)
    add_method_options(p, first + rerankers)
    p.add_argument("--rerank", default="bm25", choices=first, help="reranker: first stage")
    p.add_argument("--depth", type=check.positive_int, default=100, help="reranker: candidates reranked per query")
    p.add_argument("--first-stage-index", dest="first_stage_index",
                   help="reranker: the first stage's index folder (default: a cache folder)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=check.positive_int, default=100, help="hits kept per query")
    p.add_argument("--index", help="the method's existing or new index folder (default: a cache folder)")
    p.add_argument("--cache", default=INDEX_CACHE)
    p.add_argument("--run", type=check.output_file, help="also write the TREC run here")
    p.add_argument("--output-json", dest="output_json", type=check.output_file)
    p.add_argument("--json", action="store_true", help="print the result as JSON (for machines), not a table")
    p.add_argument("--allow-corpus-mismatch", dest="allow_corpus_mismatch", action="store_true",
                   help="use an --index / --first-stage-index built from another corpus (warns)")
    p.set_defaults(fn=fn)


def add_index(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("index", help="build an index (or a reranker's stored states) for a BEIR corpus")
    p.add_argument("--method", choices=indexed, required=True)
    add_method_options(p, indexed)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", help="split whose qrels are validated while loading")
    p.add_argument("--out", required=True)
    p.add_argument("--append", action="store_true",
                   help="add the corpus's documents the index at --out lacks, with its codec (no "
                        "re-fit); options not given take the index's (colbert; atomic: a killed "
                        "append leaves the old index)")
    p.add_argument("--force", action="store_true",
                   help="rebuild a different index already at --out (replaced only once the new one is "
                        "complete); an identical one is reused without it")
    p.set_defaults(fn=fn)


def add_compare(sub, fn) -> None:
    p = sub.add_parser("compare", help="top-k overlap of two runs; with --data also a metric for "
                                       "each and a paired randomization test of the difference")
    p.add_argument("--run", required=True, help="TREC run (e.g. PLAID)")
    p.add_argument("--reference", required=True, help="TREC run (e.g. exhaustive MaxSim)")
    p.add_argument("--k", type=check.positive_int, default=10)
    judges = p.add_mutually_exclusive_group()
    judges.add_argument("--data", help="BEIR folder whose qrels judge both runs")
    judges.add_argument("--qrels", help="qrels file judging both runs (TREC: qid 0 docid grade, or BEIR TSV)")
    p.add_argument("--split", default="test")
    p.add_argument("--metric", "--metrics", dest="metrics", nargs="+", type=check.metric, default=["ndcg@10"],
                   help="as for jaxir score (nDCG@10, P@10, R@1000, ndcg_cut_10, MAP, MRR@10, ...)")
    p.set_defaults(fn=fn)


def add_score(sub, fn) -> None:
    p = sub.add_parser("score", help="score a TREC run file against qrels, as trec_eval / ir_measures do",
                       description="Score a TREC run file (qid Q0 docid rank score tag) against qrels. "
                                   "Metric names as ir_measures or trec_eval spell them, any case.")
    p.add_argument("--run", required=True, help="TREC run file")
    judges = p.add_mutually_exclusive_group(required=True)
    judges.add_argument("--data", help="BEIR folder (or dataset name): its qrels/SPLIT.tsv judges the run")
    judges.add_argument("--qrels", help="qrels file: TREC (qid 0 docid grade) or BEIR TSV")
    p.add_argument("--split", default="test", help="with --data: which split's qrels")
    p.add_argument("--metrics", nargs="+", type=check.metric, default=["ndcg@10", "mrr@10", "recall@100", "map"],
                   help="nDCG@K (ndcg_cut_K), P@K (P_K), R@K (recall_K), MAP (AP@K = map_cut_K), MRR@K "
                        "(RR@K; recip_rank); no cut-off: the whole run. Default: nDCG@10 MRR@10 R@100 MAP")
    p.add_argument("--keep-identical-ids", dest="keep_identical_ids", action="store_true",
                   help="keep hits whose doc id equals the query id (trec_eval does; BEIR, and by "
                        "default jaxir, drop them)")
    p.add_argument("--json", action="store_true", help="print one JSON object (for machines), not a table")
    p.set_defaults(fn=fn)


def add_mine(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("mine", help="mine hard negatives for a BEIR split (default train) with any "
                                    "first-stage method, e.g. a trained ColBERT through PLAID")
    p.add_argument("--retriever", choices=first, default="bm25")
    add_method_options(p, first)
    p.add_argument("--depth", type=check.positive_int, default=100)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, type=check.output_file)
    p.add_argument("--index")
    p.add_argument("--cache", default=INDEX_CACHE)
    p.set_defaults(fn=fn)


def add_teacher(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("teacher", help="score mined train candidates with a trained reranker")
    p.add_argument("--method", choices=rerankers, default="cross-encoder")
    p.add_argument("--checkpoint", required=True, help="reranker model folder (or the recipe output folder holding it)")
    p.add_argument("--mined", required=True, help="JSONL written by `jaxir mine`")
    p.add_argument("--depth", type=check.positive_int, default=30, help="mined candidates scored per query")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, type=check.output_file)
    p.set_defaults(fn=fn)


def add_tune_alpha(sub, fn) -> None:
    p = sub.add_parser("tune-alpha", help="choose a reranker's alpha on held-out train queries")
    p.add_argument("--checkpoint", required=True, help="cross-encoder model folder (or the recipe output folder holding it)")
    p.add_argument("--data", required=True, help="BEIR folder with a train split")
    p.add_argument("--holdout", type=check.positive_int, default=50, help="held-out train queries")
    p.add_argument("--depth", type=check.positive_int, default=100, help="BM25 candidates reranked per query")
    p.add_argument("--seed", type=check.nonnegative_int, default=0)
    p.add_argument("--cache", default=INDEX_CACHE, help="where the BM25 index is built or reused")
    p.set_defaults(fn=fn)


def add_idf(sub, fn) -> None:
    p = sub.add_parser("idf", help="IDF table (OpenSearch-style idf.json) of a BEIR corpus")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", help="tokenizer folder (default: embedded MiniLM)")
    p.add_argument("--split", default="test", help="split whose qrels are validated while loading")
    p.set_defaults(fn=fn)


def add_export_model(sub, fn) -> None:
    p = sub.add_parser("export-model", help="write a checkpoint in a PyTorch tool's layout "
                                            "(colbert-ai, PyLate, BertForMaskedLM + idf.json, CrossEncoder)")
    p.add_argument("--checkpoint", required=True, help="a jaxir model folder (or any layout jaxir reads)")
    from jaxir.cli_export import EXPORTS  # the layouts each method exports to, declared once

    p.add_argument("--format", choices=sorted({f for layouts in EXPORTS.values() for f in layouts}), required=True)
    p.add_argument("--out", required=True, help="the folder to write; one already there is replaced (atomically) "
                                               "only if jaxir export-model wrote it, and only with --force")
    p.add_argument("--force", action="store_true", help="replace the folder jaxir exported earlier at --out")
    p.set_defaults(fn=fn)


def add_train(sub, fn) -> None:
    from jaxir.recipes import RECIPES

    about = ("run a training recipe; other flags go to the recipe "
             "(`jaxir train --recipe NAME --help` lists them and its modes)")
    p = sub.add_parser("train", help=about, description=about)
    p.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    p.add_argument("--data")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=fn, takes_extra=True)


def add_search(sub, fn) -> None:
    first, rerankers, indexed = _methods()
    p = sub.add_parser("search", help="search an index: print one --query's hits, or write a TREC run of --queries")
    p.add_argument("--index", required=True)
    p.add_argument("--query", help="one query: print its hits (rank, score, id, title)")
    p.add_argument("--data", help="with --query: the BEIR folder the index was built from (titles, --show's text)")
    p.add_argument("--show", action="store_true", help="with --query: print each hit's text too (needs --data)")
    p.add_argument("--queries", help="queries.jsonl[.gz], a TSV (id<TAB>text) or a BEIR folder")
    p.add_argument("--split", default="test", help="with a BEIR folder: which split's queries")
    p.add_argument("--k", type=check.positive_int, default=10)
    p.add_argument("--run", type=check.output_file, help="with --queries: the TREC run to write")
    add_method_options(p, first)  # the index's manifest names the method
    p.set_defaults(fn=fn)
