"""`jaxir COMMAND`: what each command runs, and the one exception boundary (`main`).

Commands: demo, eval, index, search, compare, score, mine, teacher, tune-alpha, idf, export,
export-model, train, plan. Each one's parser is in `jaxir.cli_parsers` (export's in
`jaxir.cli_export`, plan's in `jaxir.plan.cli`); `build_parser` pairs each with its function here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from jaxir.cli_paths import beir_folder, refuse_clobber

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the backbone is local; never reach for a hub


def _method_options(args) -> dict:
    """The method options given on the command line (unset ones are None and not passed)."""
    from jaxir.retrievers.registry import REGISTRY, options_of

    names = {n for m in REGISTRY for n in options_of(m)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _cache_indexes(cache: str | None) -> list[Path]:
    """The indexes in an index cache folder (its subfolders): the inputs it holds (a file written
    beside them clobbers none)."""
    try:
        return sorted(p for p in Path(cache).expanduser().iterdir() if p.is_dir() and not p.name.startswith("."))
    except (OSError, TypeError):
        return []


def _model_paths(args) -> dict:
    """The method options given that name files or folders the method reads."""
    options = _method_options(args)
    return {f"--{k}": options[k] for k in ("checkpoint", "model", "idf") if options.get(k)}


def cmd_eval(args) -> None:
    from jaxir.pipeline.evaluate import FirstStage, IndexSource, eval_method, format_table

    refuse_clobber("eval", {"--run": args.run, "--output-json": args.output_json},
                   {"--data": beir_folder(args.data), "--index": args.index, "--cache": _cache_indexes(args.cache),
                    "--first-stage-index": args.first_stage_index, **_model_paths(args)})
    index = IndexSource(args.index, Path(args.cache), args.allow_corpus_mismatch)
    first_stage = FirstStage(args.rerank, args.depth, args.first_stage_index)
    result = eval_method(args.method, args.data, split=args.split, k=args.k, index=index, first_stage=first_stage,
                         run_path=args.run, output_json=args.output_json, **_method_options(args))
    if args.json:  # for machines: the --output-json object, alone on stdout
        print(json.dumps(result, indent=2))
        return
    from jaxir.pipeline.evaluate import format_timing

    print(format_table([result]))
    print(format_timing(result["timing"]))


def cmd_index(args) -> None:
    from jaxir.errors import OptionError
    from jaxir.eval.beir import load_beir
    from jaxir.pipeline.built_from import check_out, index_at
    from jaxir.retrievers.registry import get_retriever

    out = Path(args.out)
    refuse_clobber("index", {"--out": out}, {"--data": beir_folder(args.data),
                                             **_model_paths(args)},
                   whole=True)
    if args.append and args.force:
        raise OptionError("--append adds to the index at --out, --force rebuilds it: give one")
    check_out(out, force=args.force)  # before the corpus is read; again under the lock at the swap
    options = _method_options(args)
    retriever = get_retriever(args.method, **options)  # options checked before the corpus is read
    dataset = load_beir(args.data, split=args.split)
    if args.append:
        from jaxir.pipeline.append import append_at

        added, secs = append_at(retriever, dataset, out, given=frozenset(options))
        print(f"appended {added} documents of {dataset.name} to {out} in {secs:.1f}s" if added else
              f"{out} already holds every document of {dataset.name}: nothing to append")
        return
    what, secs = index_at(retriever, dataset, out, force=args.force)
    if what == "reused":
        print(f"reused the index at {out}: same corpus ({len(dataset.corpus)} documents of {dataset.name}), "
              "settings and model")
    else:
        print(f"indexed {len(dataset.corpus)} documents of {dataset.name} into {out} in {secs:.1f}s")


def cmd_search(args) -> None:
    from jaxir.errors import OptionError
    from jaxir.eval.runs import write_trec
    from jaxir.index.store import load_index
    from jaxir.pipeline.search import run_search
    from jaxir.eval.queries import read_queries
    from jaxir.retrievers.registry import get_retriever, method_of_index

    if args.query is not None:  # one query, its hits printed (rank, score, id, title)
        if args.queries or args.run:
            raise OptionError("--query prints one query's hits; --queries and --run write a run: give one")
        if not args.query.strip():
            raise OptionError("--query is empty: give the text to search for")
        if args.show and not args.data:
            raise OptionError("--show prints each hit's text: give --data BEIR_DIR (the indexed corpus)")
        from jaxir.api import format_hits, load

        manifest = load_index(args.index, verify=False).manifest
        searcher = load(method_of_index(manifest["method"], manifest.get("meta")), **_method_options(args))
        print(format_hits(searcher.open(args.index, corpus=args.data).search(args.query, args.k), show=args.show))
        if not args.data:
            print("(titles: give --data BEIR_DIR, the corpus the index was built from)", file=sys.stderr)
        return
    if not (args.queries and args.run):
        raise OptionError("give --query TEXT (hits printed), or --queries FILE and --run OUT (a TREC run)")
    refuse_clobber("search", {"--run": args.run}, {"--index": args.index, "--queries": args.queries,
                                                  **_model_paths(args)})
    manifest = load_index(args.index, verify=False).manifest
    retriever = get_retriever(method_of_index(manifest["method"], manifest.get("meta")), **_method_options(args))
    queries = read_queries(args.queries, split=args.split)
    run, timing = run_search(retriever.open(Path(args.index)), queries, args.k)
    write_trec(args.run, run, tag=f"jaxir-{retriever.name}")
    print(f"searched {len(queries)} queries ({timing['ms_per_query']:.2f} ms/query) -> {args.run}")


def _qrels_of(args) -> dict:
    """`--qrels FILE` (TREC or BEIR TSV), or the `--split` qrels of the BEIR folder `--data` (only
    its qrels file is read; a dataset name not on disk is downloaded)."""
    from jaxir.eval.runs import read_qrels

    if args.qrels:
        return read_qrels(args.qrels)
    path = beir_folder(args.data) / "qrels" / f"{args.split}.tsv"
    if path.is_file():
        return read_qrels(path)
    from jaxir.eval.beir import load_beir

    return load_beir(args.data, args.split).qrels  # downloads a named set; a missing split names those there


def _warn(lines: list[str], who: str = "") -> None:
    for line in lines:
        print(f"warning: {who}{line}", file=sys.stderr)


def cmd_score(args) -> None:
    from jaxir.eval.runs import read_trec
    from jaxir.eval.score import score_run, score_table

    scored = score_run(read_trec(args.run), _qrels_of(args), args.metrics,
                       ignore_identical_ids=not args.keep_identical_ids)
    _warn(scored.warnings)
    if args.json:
        print(json.dumps({"run": args.run, "qrels": args.qrels or f"{args.data} ({args.split})",
                          "num_queries": scored.num_queries, "depth": scored.depth,
                          "metrics": scored.means, "warnings": scored.warnings}, indent=2))
    else:
        print(score_table(scored, Path(args.run).name))


def cmd_compare(args) -> None:
    from jaxir.eval.runs import read_trec, topk_overlap

    run, reference = read_trec(args.run), read_trec(args.reference)
    print(f"top-{args.k} overlap of {args.run} with {args.reference}: {topk_overlap(run, reference, args.k):.4f}")
    if args.data or args.qrels:  # effectiveness of both on the judged queries, with a paired significance test
        from jaxir.eval.score import score_run
        from jaxir.eval.significance import compare_per_query

        qrels = _qrels_of(args)
        scored = {}
        for who, r in (("--run", run), ("--reference", reference)):
            scored[who] = score_run(r, qrels, args.metrics, per_query=True)
            _warn(scored[who].warnings, f"{who}: ")
        for metric in scored["--run"].means:
            diff, p = compare_per_query(scored["--run"].per_query, scored["--reference"].per_query, metric)
            print(f"{metric}: run {scored['--run'].means[metric]:.4f}, reference "
                  f"{scored['--reference'].means[metric]:.4f}, difference {diff:+.4f} over {len(qrels)} "
                  f"queries, paired randomization p = {p:.4f}")


def cmd_mine(args) -> None:
    from jaxir.data.mine import mine_split

    refuse_clobber("mine", {"--out": args.out},
                   {"--data": beir_folder(args.data), "--index": args.index, "--cache": _cache_indexes(args.cache),
                    **_model_paths(args)})
    mine_split(args.data, retriever=args.retriever, depth=args.depth, out=args.out, split=args.split,
               index=args.index, cache=args.cache, options=_method_options(args))


def cmd_teacher(args) -> None:
    from jaxir.data.teacher import teacher_split

    refuse_clobber("teacher", {"--out": args.out}, {"--data": beir_folder(args.data),
                                                    "--checkpoint": args.checkpoint, "--mined": args.mined})
    teacher_split(checkpoint=args.checkpoint, mined=args.mined, data=args.data, out=args.out,
                  depth=args.depth, split=args.split, method=args.method)


def cmd_tune_alpha(args) -> None:
    from jaxir.recipes.cross_encoder import tune_alpha_report

    tune_alpha_report(checkpoint=args.checkpoint, data=args.data, holdout=args.holdout, depth=args.depth,
                      seed=args.seed, cache=args.cache)


def cmd_idf(args) -> None:
    from jaxir.data.idf_file import build_idf_file

    refuse_clobber("idf", {"--out": args.out}, {"--data": beir_folder(args.data), "--model": args.model})
    path, n_docs = build_idf_file(args.data, args.out, model=args.model, split=args.split)
    print(f"IDF over {n_docs} documents -> {path}")


def cmd_export(args) -> None:
    from jaxir.cli_export import options_of, run_export

    opts = options_of(args)
    refuse_clobber("export", {"--out": args.out}, {
        "--index": args.index, "--model": args.model, "--queries": args.queries,
        "--contents": opts.contents and beir_folder(opts.contents)})
    print(run_export(args, opts))


def cmd_train(args, extra: list[str]) -> None:
    from jaxir.cli_train import cmd_train as train  # every option checked before any data is read

    train(args, extra)


def cmd_demo(args) -> None:
    from jaxir.pipeline.evaluate import IndexSource, eval_method, format_table

    out = Path(args.out)
    refuse_clobber("demo", {"--out": out}, {"--data": beir_folder(args.data)})
    results = []
    for method in args.methods:
        print(f"== {method} on {args.data} ({args.split})", flush=True)
        results.append(eval_method(method, args.data, split=args.split, index=IndexSource(cache=out / "indexes"),
                                   run_path=out / f"{method}.{args.split}.trec",
                                   output_json=out / f"{method}.{args.split}.json"))
    table = format_table(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"runs, metrics and indexes are in {out}/")


def build_parser() -> argparse.ArgumentParser:
    from jaxir import cli_parsers as parsers
    from jaxir.cli_export import add_parser as add_export  # `jaxir export` (Lucene engines)
    from jaxir.cli_export import cmd_export_model
    from jaxir.plan.cli import add_parser as add_plan  # `jaxir plan` (TPU compile on this CPU)

    ap = argparse.ArgumentParser(prog="jaxir", description="Neural information retrieval in JAX")
    sub = ap.add_subparsers(dest="command", required=True)
    commands = [(parsers.add_demo, cmd_demo), (parsers.add_eval, cmd_eval), (parsers.add_index, cmd_index),
                (parsers.add_compare, cmd_compare), (parsers.add_score, cmd_score), (parsers.add_mine, cmd_mine),
                (parsers.add_teacher, cmd_teacher), (parsers.add_tune_alpha, cmd_tune_alpha),
                (parsers.add_idf, cmd_idf), (add_export, cmd_export), (parsers.add_export_model, cmd_export_model),
                (parsers.add_train, cmd_train), (parsers.add_search, cmd_search)]
    for add, run in commands:
        add(sub, run)
    add_plan(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and be the one exception boundary (`jaxir.cli_errors`): an error is one
    line on stderr and rc 2 (`--debug`, anywhere on the line, shows the traceback too), Ctrl-C
    one line and rc 130; a usage error is argparse's, rc 2."""
    from jaxir.cli_errors import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv[:1] == ["train"] and {"-h", "--help"} & set(argv):
        from jaxir.recipes import print_recipe_help

        print_recipe_help(argv[1:])  # exits when --recipe names one; else train's own help follows
    return run_command(lambda: _dispatch(argv), next((a for a in argv if not a.startswith("-")), ""), debug=debug)


def _dispatch(argv: list[str]) -> None:
    from jaxir.platforms import skip_absent_tpu

    args, extra = build_parser().parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    skip_absent_tpu()
    args.fn(args, extra) if getattr(args, "takes_extra", False) else args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
