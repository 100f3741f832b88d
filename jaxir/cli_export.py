"""`jaxir export-model`: a model in a PyTorch tool's layout (`export_checkpoint`). `jaxir export`: a learned-sparse index's documents, or a query set weighted as the index
weights it, as files for Lucene engines (reads the index, its tokenizer and BEIR texts, so above
the text floor; the formats are `jaxir.export`'s).

    jaxir export --index IDX --format anserini --out docs/docs.jsonl [--contents BEIR] [--scale 100]
    jaxir export --index IDX --format anserini --queries BEIR --split test --out queries.tsv
    jaxir export --index IDX --format rank_features --queries BEIR --out bodies.jsonl

`--format anserini` writes a JsonVectorCollection and pretokenized impact topics (integer
weights round(w * scale) on both sides), `rank_features` OpenSearch documents and neural_sparse
search bodies (float weights).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from jaxir.config.bounds import bounded
from jaxir.export import ANSERINI_SCALE, RANK_FEATURES_FIELD


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How an index is written (the files' settings; what is read and written are plain options)."""

    # anserini: integer weights round(w x scale) for documents and queries alike, terms that
    # round to 0 dropped; Lucene scores the exact integer dot product, so a larger scale is finer
    scale: float = bounded(ANSERINI_SCALE, gt=0)
    # documents: the BEIR folder (or dataset name) the index was built from; each document's title
    # and text go in its record (anserini contents, rank_features text); unset: no text
    contents: str | None = None
    # rank_features: the OpenSearch field of the vectors (the documents' and the queries')
    field: str = RANK_FEATURES_FIELD


def add_parser(sub, fn) -> None:
    """`jaxir export` in `jaxir.cli`'s subcommands, run by `fn` (the CLI's `cmd_export`)."""
    from jaxir import cli_args as check
    from jaxir.config.options import add_config_options

    p = sub.add_parser("export", help="write a learned-sparse index's documents, or queries weighted as it "
                                      "weights them, for Anserini / Pyserini or OpenSearch")
    p.add_argument("--index", required=True, help="a learned-sparse index folder (jaxir index --method sparse)")
    p.add_argument("--format", choices=["rank_features", "anserini"], required=True)
    p.add_argument("--out", required=True, type=check.output_file,
                   help="documents: JSON lines (.jsonl or .jsonl.gz); --queries: anserini a TSV of topics, "
                        "rank_features JSON lines of search bodies")
    p.add_argument("--queries", help="write these queries instead of the documents: queries.jsonl[.gz], "
                                     "a TSV (id<TAB>text) or a BEIR folder (its --split)")
    p.add_argument("--split", default="test", help="with a BEIR folder for --queries: which split's queries")
    p.add_argument("--model", help="tokenizer folder (default: embedded MiniLM)")
    add_config_options(p, ExportOptions, defaults=ExportOptions())
    p.set_defaults(fn=fn)


def options_of(args: argparse.Namespace) -> ExportOptions:
    """The ExportOptions the command line gave (unset options keep their defaults), checked
    against the format and what is exported."""
    from jaxir.config.options import leaf_names
    from jaxir.config.overrides import apply_overrides
    from jaxir.errors import OptionError

    given = {name: getattr(args, name) for name in leaf_names(ExportOptions) if getattr(args, name) is not None}
    misplaced = {"scale": args.format != "anserini", "field": args.format != "rank_features",
                 "contents": args.queries is not None}
    wrong = next((name for name in given if misplaced.get(name)), None)
    if wrong is not None:
        what = f"--format {args.format}" if wrong != "contents" else "--queries"
        raise OptionError(f"--{wrong} does not apply to {what}: leave it out")
    return apply_overrides(ExportOptions(), given)


def run_export(args: argparse.Namespace, opts: ExportOptions) -> str:
    """Write what the command line asks for (its options checked by `options_of`, its paths by the
    CLI); returns the line to print."""
    from jaxir.index.sparse_search import SparseIndex
    from jaxir.text import load_tokenizer
    from jaxir.text.idf import tokenizer_vocab

    tok = load_tokenizer(args.model)
    index, vocab = SparseIndex.load(args.index, tokenizer=tok), tokenizer_vocab(tok)
    if args.queries is None:
        n = export_documents(index, vocab, args.format, args.out, opts)
        return f"exported {n} documents of {args.index} as {args.format} -> {args.out}"
    n, skipped = export_queries(index, vocab, args.format, args.out, opts, args.queries, args.split)
    left = f" ({len(skipped)} left out: no term weighs above 0.5 / scale, e.g. {skipped[0]})" if skipped else ""
    return f"exported {n} queries of {args.queries} weighted by {args.index} as {args.format} -> {args.out}{left}"


def export_documents(index, vocab, fmt: str, out: str | Path, opts: ExportOptions) -> int:
    """Write the index's documents (with their texts when `opts.contents` names the corpus)."""
    from jaxir import export

    docs = export.index_documents(index, vocab)
    if opts.contents is not None:
        docs = with_texts(docs, opts.contents)
    if fmt == "anserini":
        return export.write_json_vector_collection(out, docs, scale=opts.scale)
    return export.write_rank_features(out, docs, field=opts.field)


def with_texts(docs, corpus_source: str):
    """(doc id, vector, None) -> (doc id, vector, title + text from the BEIR corpus); a document
    the corpus lacks is a DataError (the corpus is not the one the index was built from)."""
    from jaxir.errors import DataError
    from jaxir.eval.beir import doc_text, load_corpus

    _, corpus = load_corpus(corpus_source)
    for doc_id, vector, _ in docs:
        if doc_id not in corpus:
            raise DataError(f"--contents {corpus_source}: no document {doc_id!r}, which the index holds "
                            "(give the corpus the index was built from)")
        yield doc_id, vector, doc_text(corpus[doc_id])


def export_queries(index, vocab, fmt: str, out: str | Path, opts: ExportOptions, source: str,
                   split: str = "test") -> tuple[int, list[str]]:
    """Write `source`'s queries weighted as the index's search weights them; returns (written,
    ids left out for having no term that survives the anserini scale)."""
    from jaxir import export
    from jaxir.errors import OptionError
    from jaxir.eval.queries import read_queries

    encoder = index.meta.get("query_encoder", "idf")
    if encoder != "idf":
        raise OptionError(f"this index's queries are encoded by its model (query encoder {encoder!r}); "
                          "--queries exports the IDF-weighted queries of inference-free sparse indexes")
    vectors = export.index_queries(index, vocab, read_queries(source, split=split))
    if fmt == "anserini":
        return export.write_impact_queries(out, vectors, scale=opts.scale)
    return export.write_neural_sparse_queries(out, vectors, field=opts.field), []


def cmd_export_model(args) -> None:
    from jaxir.cli_paths import refuse_clobber

    refuse_clobber("export-model", {"--out": args.out}, {"--checkpoint": args.checkpoint}, whole=True)
    out = export_checkpoint(args.checkpoint, fmt=args.format, out=args.out, force=args.force)
    print(f"exported {args.checkpoint} as {args.format} -> {out}")


EXPORTS = {"colbert": ("colbert-ai", "pylate"), "sparse": ("hf-mlm",), "cross-encoder": ("sentence-transformers",)}


def export_checkpoint(checkpoint, *, fmt: str, out, force: bool = False):
    """The engine of `jaxir export-model` (above the retrievers, which load every jaxir checkpoint;
    `jaxir.interop` writes the layout): load any checkpoint jaxir reads and write it in layout `fmt` at
    `out`, which must not exist or (with `force`) be a folder jaxir exported."""
    import importlib

    from jaxir.errors import CheckpointError
    from jaxir.interop import METHOD_OF, detect_format, export_model
    from jaxir.interop.folders import check_replaceable
    from jaxir.models.folders import model_folder
    from jaxir.models.saved_model import read_model_info
    from jaxir.retrievers.registry import REGISTRY

    check_replaceable(out, force=force)  # before the model is loaded; again under the lock
    path = model_folder(checkpoint)  # a recipe's output folder: its model folder
    found = detect_format(path)
    method = read_model_info(path)["method"] if found == "jaxir" else METHOD_OF[found]
    if fmt not in EXPORTS.get(method, ()):
        allowed = ", ".join(EXPORTS.get(method, ())) or "none"
        raise CheckpointError(f"{checkpoint} holds a {method} model: it exports to {allowed}, not {fmt}")
    files = {}  # the method's retriever module (the registry's) holds its CHECKPOINTS
    checkpoints = importlib.import_module(REGISTRY[method].split(":")[0]).CHECKPOINTS
    model, params = checkpoints.load_model(str(path), {})
    if (path / "idf.json").is_file():
        files["idf.json"] = path / "idf.json"
    try:
        return export_model(model, params, fmt=fmt, out=out, files=files, force=force)
    except CheckpointError as e:
        raise CheckpointError(f"{checkpoint}: {e}") from e
