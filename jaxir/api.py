"""The Python API: `jaxir.load(method)` gives one object for every registered method.

`load(method, checkpoint=None, **options)` configures the method's registered retriever
(`jaxir.retrievers.registry`; the options are the ones `jaxir index/eval` take, in Python
spelling) and loads its weights, so an unknown method, an option it does not take or a
checkpoint of another method fails here, in one line. The object then offers:

* ``encode(texts, kind="query"|"document")`` where the method encodes texts (dense, I³: vectors;
  ColBERT: token matrices; SPLADE both sides and inference-free sparse documents: {token: weight}).
* ``index(corpus, path)``: builds (or reuses an identical) index exactly as ``jaxir index --out``
  does, recording the corpus fingerprint, so ``jaxir eval --index path`` accepts it. The corpus is
  a BEIR folder (or dataset name), a list / iterator of {"_id" or "id", "title", "text"} dicts, or a
  mapping id -> such a dict. ``open(path, corpus=None)`` opens an index built before.
* ``search(queries, k=10)``: one query -> a list of `Hit` (rank, id, score, title; the text rides
  along), a list of queries -> one list per query, a mapping id -> text -> a mapping of lists.
* ``rerank(query, candidates)`` for the rerankers (cross-encoder, mice, colbert-rerank):
  candidates are `Hit`s of a first stage (their scores feed the reranker's alpha), dicts, or
  strings (texts; ids for a reranker that reads stored states: colbert-rerank, MICE over states).

Nothing here implements a method: every call goes to the registry's retriever.

>>> import tempfile
>>> import jaxir
>>> docs = [{"_id": "d1", "title": "Purring", "text": "Cats purr when they are content."},
...         {"_id": "d2", "title": "Barking", "text": "Dogs bark at strangers at night."},
...         {"_id": "d3", "title": "Pets", "text": "Cats and dogs can share a home."}]
>>> bm25 = jaxir.load("bm25").index(docs, tempfile.mkdtemp() + "/bm25")
>>> for hit in bm25.search("why do cats purr?", k=2):
...     print(hit.rank, hit.id, f"{hit.score:.4f}", hit.title)
1 d1 0.5971 Purring
2 d3 0.1780 Pets
>>> print(jaxir.format_hits(bm25.search("dogs at night", k=2)))
rank   score  id  title
   1  0.5971  d2  Barking
   2  0.1780  d3  Pets
>>> jaxir.load("tfidf")
Traceback (most recent call last):
...
jaxir.errors.OptionError: unknown method 'tfidf'; choose from ['bm25', 'colbert', 'colbert-rerank', 'cross-encoder', 'dense', 'i3', 'mice', 'sparse', 'splade']
"""
from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

from jaxir.errors import DataError, EmptyInputError, IndexFormatError, OptionError

__all__ = ["Hit", "Retriever", "format_hits", "load", "method_names"]


@dataclasses.dataclass(frozen=True)
class Hit:
    """One ranked document: 1-based rank, id (a string candidate's position for texts given to
    `rerank`), score (higher is better), title and text ("" where the corpus is not known; the
    text is left out of the repr)."""

    rank: int
    id: str | int
    score: float
    title: str = ""
    text: str = dataclasses.field(default="", repr=False)


def method_names() -> list[str]:
    """The registered method names, as `load` takes them."""
    from jaxir.retrievers.registry import REGISTRY

    return sorted(REGISTRY)


def load(method: str, checkpoint: str | os.PathLike | None = None, *, progress: bool = False,
         **options) -> "Retriever":
    """The registered `method` with its weights loaded (`checkpoint`: a model folder of that
    method, or a layout jaxir imports; None: the method's default model). `options` are the
    method's options (`jaxir index --help`); `progress` shows encoding progress bars."""
    from jaxir.platforms import skip_absent_tpu
    from jaxir.retrievers.registry import get_retriever, options_of

    skip_absent_tpu()
    known = options_of(method)  # an unknown method: OptionError naming the known ones
    if checkpoint is not None:
        if "checkpoint" not in known:
            raise OptionError(f"{method} takes no checkpoint (its options: {', '.join(sorted(known)) or 'none'})")
        options["checkpoint"] = os.fspath(checkpoint)
    retriever = get_retriever(method, **options)
    if "progress" in {f.name for f in dataclasses.fields(retriever)}:
        retriever.progress = progress
    return Retriever(method, retriever)._load_weights()


class Retriever:
    """A registered method behind one interface (see the module's documentation); made by `load`."""

    def __init__(self, method: str, retriever):
        self.method, self.retriever = method, retriever
        self.is_reranker = hasattr(retriever, "open_reranker")
        self.index_path: Path | None = None
        self.last_index: str | None = None  # "built" or "reused" by the last `index` call
        self._searcher = self._reranker = None
        self._corpus: dict[str, dict] | None = None

    def __repr__(self) -> str:
        return f"<jaxir {self.method} {'reranker' if self.is_reranker else 'retriever'}, index {self.index_path}>"

    def _load_weights(self) -> "Retriever":
        """Load (and check) the weights now, so a wrong checkpoint fails in `load`."""
        r = self.retriever
        if self.is_reranker and not r.index_kind:  # reranks texts, keeps no index
            self._reranker = r.open_reranker(None)
            return self
        for cached in ("_loaded", "_encoder"):  # the retrievers' model, loaded once
            if hasattr(type(r), cached):
                getattr(r, cached)
                break
        return self

    # ---- encode ---------------------------------------------------------------------------------
    def encode(self, texts, kind: str = "query"):
        """`kind` texts encoded as the method's index (documents) or searcher (queries) encodes
        them; one string -> one encoding, a list -> one per text (dense, I³: float32 [N, H])."""
        from jaxir.retrievers.registry import REGISTRY, retriever_class

        encode = getattr(self.retriever, "encode", None)
        if encode is None:
            able = [m for m in REGISTRY if hasattr(retriever_class(m), "encode")]
            raise OptionError(f"{self.method} does not encode single texts (methods that do: {', '.join(able)})")
        single = isinstance(texts, str)
        out = encode(_texts([texts] if single else texts, kind), kind)
        return out[0] if single else out

    # ---- index ----------------------------------------------------------------------------------
    def index(self, corpus, path: str | os.PathLike, *, force: bool = False) -> "Retriever":
        """Index `corpus` at `path` (an identical index there is reused; a different one needs
        force=True, and stays until the new one is complete), then open it; returns self."""
        from jaxir.pipeline.built_from import index_at

        if not self.retriever.index_kind:
            raise OptionError(f"{self.method} keeps no index: rerank(query, candidates) scores the candidates' texts")
        dataset = self._use_corpus(corpus)
        self.last_index, _ = index_at(self.retriever, dataset, Path(path), force=force)
        return self._open(Path(path))

    def open(self, path: str | os.PathLike, *, corpus=None) -> "Retriever":
        """Open the index at `path` (built by `index` or `jaxir index`); `corpus` (as `index`
        takes it) supplies titles and texts, and must be the one the index records."""
        path = Path(path)
        if corpus is not None:
            from jaxir.index.manifest import BUILT_FROM, read_manifest
            from jaxir.pipeline.built_from import corpus_mismatch

            dataset = self._use_corpus(corpus)
            if read_manifest(path).get(BUILT_FROM) is not None and corpus_mismatch(path, dataset):
                raise IndexFormatError(corpus_mismatch(path, dataset))
        return self._open(path)

    def _open(self, path: Path) -> "Retriever":
        if self.is_reranker:
            self._reranker = self.retriever.open_reranker(path)
        else:
            self._searcher = self.retriever.open(path)
        self.index_path = path
        return self

    def _use_corpus(self, corpus):
        from jaxir.eval.beir import BeirDataset, corpus_from_records, load_corpus

        if isinstance(corpus, (str, os.PathLike)):
            name, docs = load_corpus(corpus)
        else:
            name, docs = "corpus", corpus_from_records(corpus)
        self._corpus = docs
        return BeirDataset(name=name, split="corpus", corpus=docs, queries={}, qrels={})

    # ---- search ---------------------------------------------------------------------------------
    def search(self, queries, k: int = 10):
        """Hits of one query (a string), of each query (a list), or {query id: hits} (a mapping)."""
        from jaxir.retrievers.registry import first_stage_methods

        if self.is_reranker:
            raise OptionError(f"{self.method} is a reranker: search with a first stage "
                              f"({', '.join(first_stage_methods())}) and rerank(query, hits)")
        if self._searcher is None:
            raise OptionError("no index to search: index(corpus, path) or open(path) first")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise OptionError(f"k must be a positive integer, got {k!r}")
        if isinstance(queries, str):
            return self._search([queries], k)[0]
        if isinstance(queries, Mapping):
            ids = list(queries)
            return dict(zip(ids, self._search([queries[q] for q in ids], k)))
        return self._search(list(queries), k)

    def _search(self, texts: list, k: int) -> list[list[Hit]]:
        found = self._searcher.search(_texts(texts, "query"), k)
        return [[self._hit(rank, doc, score) for rank, (doc, score) in enumerate(zip(ids, scores), start=1)]
                for ids, scores in found]

    def _hit(self, rank: int, doc_id, score, title: str | None = None, text: str | None = None) -> Hit:
        doc = (self._corpus or {}).get(doc_id) if isinstance(doc_id, str) else None
        if doc is not None:
            from jaxir.eval.beir import doc_text

            title = doc["title"] if title is None else title
            text = text or doc_text(doc)
        return Hit(rank, doc_id, float(score), title or "", text or "")

    # ---- rerank ---------------------------------------------------------------------------------
    def rerank(self, query: str, candidates, *, k: int | None = None) -> list[Hit]:
        """`candidates` (Hits, {"_id"/"id", "title", "text"[, "score"]} dicts, or strings) ranked by
        the reranker, best first (`k`: the top k only). When every candidate carries a first-stage
        score, the reranker's alpha (if set) interpolates with it, as `jaxir eval` does."""
        import numpy as np

        from jaxir.retrievers.registry import rerank_methods

        if not self.is_reranker:
            raise OptionError(f"{self.method} is a first stage, not a reranker: search(query, k) ranks its "
                              f"index (rerankers: {', '.join(rerank_methods())})")
        query = _texts([query], "query")[0]
        reranker = self._open_reranker()
        by_id = bool(getattr(reranker, "takes_doc_ids", False))
        rows = [self._candidate(pos, c, by_id) for pos, c in enumerate(candidates)]
        if not rows:
            return []
        docs = [doc_id if by_id else text for doc_id, _, text, _ in rows]
        first = [s for *_, s in rows]
        if all(s is not None for s in first):
            scores = reranker.rerank_many([query], [docs], [first])[0]
        elif hasattr(reranker, "scores"):  # raw scores: no first stage to interpolate with
            from jaxir.methods.cross_encoder import check_finite_scores

            scores = reranker.scores([query], [docs])[0]
            check_finite_scores(scores, query)
        else:
            scores = reranker.rerank_many([query], [docs], None)[0]
        order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
        return [self._hit(rank, rows[i][0], scores[i], rows[i][1], rows[i][2])
                for rank, i in enumerate(order, start=1)]

    def _open_reranker(self):
        if self._reranker is None:
            try:
                self._reranker = self.retriever.open_reranker(None)
            except ValueError as e:
                raise OptionError(f"{self.method} reranks from an index: index(corpus, path) or open(path) "
                                  f"first ({e})") from None
        return self._reranker

    def _candidate(self, pos: int, c, by_id: bool) -> tuple:
        """(id, title, text, first-stage score or None) of one candidate."""
        if isinstance(c, Hit):
            doc_id, title, text, score = c.id, c.title, c.text, c.score
        elif isinstance(c, Mapping):
            doc_id = c.get("_id", c.get("id"))
            title, score = c.get("title"), c.get("score")
            text = f"{c.get('title') or ''} {c.get('text') or ''}".strip() if ("text" in c or "title" in c) else ""
        elif isinstance(c, str):
            doc_id, title, text, score = (c, None, "", None) if by_id else (pos, None, c, None)
        else:
            raise DataError(f"candidate {pos + 1} is a {type(c).__name__}: give Hits, dicts or strings")
        if by_id:
            if doc_id is None:
                raise DataError(f"candidate {pos + 1} has no id; {self.method} reads stored documents by id")
            doc_id = str(doc_id)
        elif not text:
            doc = (self._corpus or {}).get(str(doc_id))
            if doc is None:
                raise DataError(f"candidate {pos + 1} ({doc_id!r}) has no text, and no corpus given to this "
                                f"{self.method} holds it: pass dicts with 'text', or hits of a retriever that indexed the corpus")
            from jaxir.eval.beir import doc_text

            text, title = doc_text(doc), doc["title"] if title is None else title
        return doc_id, title, text, score


def _texts(texts, kind: str) -> list[str]:
    """The texts as a list; an empty (or blank) one is an EmptyInputError naming its position."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(f"{kind} {i + 1} is a {type(t).__name__}, not a string")
        if not t.strip():
            raise EmptyInputError(f"the {kind} is empty" if len(texts) == 1 else f"{kind} {i + 1} is empty")
    return texts


def format_hits(hits, *, show: bool = False, title_width: int = 80, text_chars: int = 300) -> str:
    """A table of hits (rank, score, id, title), columns as wide as their contents; `show` adds
    each hit's text (its first `text_chars` characters) under it."""
    hits = list(hits)
    if not hits:
        return "no hits"
    cols = [("rank", [str(h.rank) for h in hits]), ("score", [f"{h.score:.4f}" for h in hits]),
            ("id", [str(h.id) for h in hits]),
            ("title", [textwrap.shorten(h.title, title_width, placeholder=" ...") if h.title else "" for h in hits])]
    widths = [max(len(name), *(len(v) for v in values)) for name, values in cols]

    def line(cells):
        out = [cells[0].rjust(widths[0]), cells[1].rjust(widths[1]), cells[2].ljust(widths[2]), cells[3]]
        return "  ".join(out).rstrip()
    lines = [line([name for name, _ in cols])]
    for i, h in enumerate(hits):
        lines.append(line([values[i] for _, values in cols]))
        if show:
            body = h.text[len(h.title):].strip() if h.title and h.text.startswith(h.title) else h.text
            text = textwrap.shorten(body, text_chars, placeholder=" ...") if body else "(no text: corpus not given)"
            lines += textwrap.wrap(text, 100, initial_indent=" " * (widths[0] + 2), subsequent_indent=" " * (widths[0] + 2))
    return "\n".join(lines)
