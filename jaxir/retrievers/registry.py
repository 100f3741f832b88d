"""Method name -> retriever: the one table the CLI, `jaxir eval`, mining and teacher scoring read.

A new method is one file in `jaxir/retrievers/` and one line in REGISTRY. Entries are
"module:Class" strings so that listing the methods (the CLI's choices) imports no model code;
a retriever module itself imports jax only inside its methods.
"""
from __future__ import annotations

import dataclasses
import importlib

from jaxir.config.bounds import field_error
from jaxir.errors import OptionError

REGISTRY: dict[str, str] = {
    "bm25": "jaxir.retrievers.bm25:BM25Retriever",
    "dense": "jaxir.retrievers.dense:DenseRetriever",
    "colbert": "jaxir.retrievers.colbert:ColBERTRetriever",
    "sparse": "jaxir.retrievers.sparse:SparseRetriever",
    "splade": "jaxir.retrievers.splade:SpladeRetriever",
    "i3": "jaxir.retrievers.i3:I3Retriever",
    "cross-encoder": "jaxir.retrievers.cross_encoder:CrossEncoderReranker",
    "mice": "jaxir.retrievers.mice:MiceReranker",
    "colbert-rerank": "jaxir.retrievers.colbert_rerank:ColBERTReranker",
}


def retriever_class(name: str) -> type:
    """The registered class of `name`; ValueError names the known methods."""
    if name not in REGISTRY:
        raise OptionError(f"unknown method {name!r}; choose from {sorted(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def is_reranker(name: str) -> bool:
    """True for methods that rescore a first stage's candidates instead of searching an index."""
    return hasattr(retriever_class(name), "open_reranker")


def first_stage_methods() -> list[str]:
    return [n for n in REGISTRY if not is_reranker(n)]


def rerank_methods() -> list[str]:
    return [n for n in REGISTRY if is_reranker(n)]


def indexed_methods() -> list[str]:
    """Methods that write an index: every first stage, and rerankers with stored state (MICE)."""
    return [n for n in REGISTRY if getattr(retriever_class(n), "index_kind", None)]


def options_of(name: str) -> dict[str, dataclasses.Field]:
    """The option fields (those declared with `base.option`) of a method's retriever."""
    return {f.name: f for f in dataclasses.fields(retriever_class(name)) if "help" in f.metadata}


def get_retriever(name: str, **options):
    """A configured retriever. None values mean "not given"; an option the method does not take
    is an error naming it (never silently dropped)."""
    given = {k: v for k, v in options.items() if v is not None}
    known = options_of(name)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise OptionError(f"method {name!r} takes no option {', '.join('--' + u.replace('_', '-') for u in unknown)}"
                         f" (its options: {', '.join(sorted(known)) or 'none'})")
    for option, value in given.items():  # the command line's checks, for callers that skip it
        if (why := field_error(known[option].metadata, value)) is not None:
            raise OptionError(f"--{option.replace('_', '-')} {why} (method {name})")
    return retriever_class(name)(**given)


def method_of_index(index_kind: str, meta: dict | None = None) -> str:
    """The method whose retriever reads an index whose manifest says `method: index_kind`; where
    several share the kind (sparse, splade), the one whose `reads_index(meta)` says so."""
    for name in REGISTRY:
        cls = retriever_class(name)
        if getattr(cls, "index_kind", None) == index_kind and getattr(cls, "reads_index", lambda m: True)(meta or {}):
            return name
    raise OptionError(f"no registered method reads {index_kind!r} indexes")
