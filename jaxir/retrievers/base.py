"""What every retriever offers the CLI, evaluation, mining and teacher scoring.

A first-stage retriever builds an index from a corpus and opens it as a searcher that maps query
texts to ranked doc ids. A reranker opens (optionally over an index of its own, such as stored
document states) as a scorer of each query's candidates. Model-based retrievers record the model
fingerprint in the index manifest and refuse to search an index built with other weights.

One naming scheme, used everywhere:

    jaxir.methods      <M>Config (the settings, in <m>_config.py: no jax)
                       <M>Model (init / apply, pure functions of params)
    jaxir.retrievers   <M>Retriever: a registry entry that builds and opens an index (first stage)
                       <M>Reranker:  a registry entry that opens a scorer of candidates
                       <M>Searcher:  what a retriever opens (`search(queries, k)`)
                       <M>Scorer:    what a reranker opens (`rerank_many(queries, candidates)`)

Retrievers are dataclasses: their fields are the options `jaxir index/eval/search` take (one
`--field-name` each, help from the field's metadata), so a new option is one field. An option that
overrides a field of the method's config is declared with `config_option`: its range, choices and
help are that config field's (declared once, in `jaxir/methods/<m>_config.py`), never restated.
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
    # The manifest "method" of the state index it reads (MICE's document states), else None.
    index_kind: str | None

    def open_reranker(self, index_dir: Path | None = None) -> "Scorer": ...


class Encoder(Protocol):
    """Retrievers whose method encodes texts also offer `encode` (`jaxir.load(...).encode`)."""

    def encode(self, texts: Sequence[str], kind: str = "query"): ...


class Scorer(Protocol):
    """What a reranker opens: per query, scores of its candidates (doc texts, or ids where the
    scorer sets `takes_doc_ids`)."""

    def rerank_many(self, queries: Sequence[str], doc_lists: Sequence[Sequence[str]],
                    first_stage: Sequence | None = None) -> list[np.ndarray]: ...


def option(default=None, help: str = "", *, search_only: bool = False, ge=None, le=None, choices=None):
    """A retriever field that is also a CLI option. search_only: it changes how an index is
    searched, not what is in it, so it stays out of the index cache key (repr). ge / le: the
    least / greatest value, choices: the values, it takes (`jaxir.config.bounds.field_error`:
    checked at parse time and by `registry.get_retriever`, before any data is read; numbers
    must be finite)."""
    rules = {"bounds": {k: v for k, v in (("ge", ge), ("le", le)) if v is not None}}
    return _option_field(default, help, search_only, rules if choices is None else {**rules, "choices": tuple(choices)})


def _option_field(default, help: str, search_only: bool, rules: dict, **extra):
    """The one shape of an option field: its value rules, help and search_only in the metadata,
    out of the index cache key (repr) when search_only."""
    metadata = {**rules, "help": help, "search_only": search_only, **extra}
    return dataclasses.field(default=default, repr=not search_only, metadata=metadata)


# What a config field's metadata declares of its values (`jaxir.config.bounds`): an option that
# overrides the field takes exactly these.
VALUE_RULES = ("bounds", "choices", "finite")


def config_option(config: str, field: str, *, default=None, help: str = "", search_only: bool = False):
    """A retriever field that is a CLI option overriding the field `field` of the method config
    `config` ("module:Class", a jax-free `jaxir/methods/<m>_config.py`). The field is the one
    source: the option takes its range, choices and finiteness (`bounded`, `one_of`) and its help
    is the comment above it, followed by `help`, the retriever's own note ("(default: the
    checkpoint's)"). The retriever passes the value on as that field's override."""
    from jaxir.config.options import field_help

    cls = _resolve(config)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if field not in fields:
        raise TypeError(f"{config} has no field {field!r}")
    f = fields[field]
    rules = {"bounds": {}, **{k: f.metadata[k] for k in VALUE_RULES if k in f.metadata}}
    return _option_field(default, " ".join(filter(None, (field_help(cls, f), help))), search_only, rules,
                         config_field=f"{config}.{field}")


def threads_option():
    """The `--threads` option of every retriever whose searcher spreads queries over threads."""
    return option(None, "queries searched at once, one thread each (default: the machine's cores; 1 for "
                        "bm25 and sparse, whose Python tokenising holds the GIL: 2 threads ran BM25 at 0.90x)",
                  search_only=True, ge=1)


ENCODE_KINDS = ("query", "document")


def check_kind(kind: str) -> None:
    """What a retriever's `encode(texts, kind)` encodes: "query" or "document" texts."""
    if kind not in ENCODE_KINDS:
        from jaxir.errors import OptionError

        raise OptionError(f"encode kind {kind!r}: choose from {list(ENCODE_KINDS)}")


@dataclasses.dataclass
class FunctionSearcher:
    """A searcher from a plain `(query texts, k) -> Hits` function."""

    fn: object

    def search(self, queries, k):
        return self.fn(list(queries), k)


def _resolve(name: str):
    import importlib

    module, attr = name.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class MethodCheckpoints:
    """Save / load one method's model folders (`jaxir.models.saved_model`). The config and model
    classes are named "module:Class" and imported on use, so a retriever module imports no jax."""

    method: str
    config_cls: str
    model_cls: str
    # Config fields that differ from the config class's defaults without a checkpoint (SPLADE:
    # the sparse config with query_encoder "mlm").
    defaults: tuple[tuple[str, object], ...] = ()

    def save(self, path: str | Path, config, params, files: dict | None = None, *, bert_config=None) -> Path:
        """Write config + params as a model folder; `files` {name: source path} are copied in.
        `bert_config`: the backbone's architecture, recorded so that loading builds the model
        from it rather than from the backbone folder (a backbone given in memory, as tests do)."""
        from jaxir.models.saved_model import save_model

        extra = {"bert": bert_config.to_dict()} if bert_config is not None else None
        return save_model(path, method=self.method, config=config, params=params, files=files, extra=extra)

    def load(self, path: str | Path):
        """(config, params) of a saved folder."""
        model, params = self.load_model(path, {})
        return model.config, params

    def load_model(self, checkpoint, overrides: dict, model_dir=None):
        """(model, params): the checkpoint's (a jaxir model folder, a recipe's output folder holding
        one, or a PyTorch tool's layout read by `jaxir.interop`), or without one the backbone
        (`model_dir`) + a fresh seeded head. `overrides` replace config fields unless None."""
        from jaxir.interop import detect_format, load_foreign
        from jaxir.models.folders import model_folder
        from jaxir.models.saved_model import load_or_init

        if checkpoint is not None:  # a recipe's output folder reads as its model folder
            checkpoint = model_folder(checkpoint, self.method)
        if checkpoint is not None and detect_format(checkpoint, method=self.method) != "jaxir":
            return load_foreign(checkpoint, method=self.method,
                                overrides={k: v for k, v in overrides.items() if v is not None})
        config_cls = _resolve(self.config_cls)
        return load_or_init(checkpoint, method=self.method, config_cls=config_cls,
                            default_config=config_cls(model=model_dir, **dict(self.defaults)),
                            make_model=_resolve(self.model_cls), overrides=overrides)
