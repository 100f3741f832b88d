"""What every retriever offers the CLI, evaluation, mining and teacher scoring.

A first-stage retriever builds an index from a corpus and opens it as a searcher that maps query
texts to ranked doc ids. A reranker opens (optionally over an index of its own, such as stored
document states) as a scorer of each query's candidates. Model-based retrievers record the model
fingerprint in the index manifest and refuse to search an index built with other weights.

Retrievers are dataclasses: their fields are the options `jaxir index/eval/search` take (one
`--field-name` each, help from the field's metadata), so a new option is one field.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

Hits = list[tuple[list[str], np.ndarray]]  # per query: (doc ids, scores), best first


class Searcher(Protocol):
    def search(self, queries: Sequence[str], k: int) -> Hits: ...


class Retriever(Protocol):
    name: str
    # The manifest "method" of the index this retriever writes (None: it writes none).
    index_kind: str | None

    def build(self, doc_ids: Sequence[str], texts: Sequence[str], out: Path) -> Path: ...

    def open(self, index_dir: Path) -> Searcher: ...


class Reranker(Protocol):
    name: str

    def rerank_many(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]],
                    first_stage: Sequence | None = None) -> list[np.ndarray]: ...


def option(default=None, help: str = "", *, search_only: bool = False):
    """A retriever field that is also a CLI option. search_only: it changes how an index is
    searched, not what is in it, so it stays out of the index cache key (repr)."""
    return dataclasses.field(default=default, repr=not search_only,
                             metadata={"help": help, "search_only": search_only})


@dataclasses.dataclass
class FunctionSearcher:
    """A searcher from a plain `(query texts, k) -> Hits` function."""

    fn: object

    def search(self, queries, k):
        return self.fn(list(queries), k)
