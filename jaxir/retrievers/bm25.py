"""BM25 behind the retriever protocol: Lucene weights over word (or WordPiece) tokens."""
from __future__ import annotations

import dataclasses

from jaxir.retrievers.base import FunctionSearcher, option, threads_option

# jaxir.text.analysis.ANALYZERS, spelled here so that listing the CLI's options imports no
# tokenizer (tests/cli/test_cli_validation.py checks they agree).
ANALYZERS = ("word", "wordpiece")


@dataclasses.dataclass
class BM25Retriever:
    """Lucene BM25 over word tokens (stopwords + English stemming) or WordPiece tokens."""

    analyzer: str = option("word", "'word' (stopwords + Snowball stems) or 'wordpiece'", choices=ANALYZERS)
    k1: float = option(1.5, "term-frequency saturation", ge=0.0)
    b: float = option(0.75, "document-length normalisation", ge=0.0, le=1.0)
    threads: int | None = threads_option()
    name: str = dataclasses.field(default="bm25", init=False)
    index_kind = "bm25"

    def build(self, doc_ids, texts, out):
        from jaxir.index.bm25 import BM25Index

        return BM25Index.build(texts, doc_ids=doc_ids, analyzer=self.analyzer, k1=self.k1, b=self.b).save(out)

    def open(self, index_dir):
        from jaxir.index.bm25 import BM25Index

        from jaxir.index.query_pool import resolve_threads

        index, threads = BM25Index.load(index_dir), resolve_threads(1 if self.threads is None else self.threads)
        return FunctionSearcher(lambda qs, k: index.search_batch(qs, k, threads=threads))
