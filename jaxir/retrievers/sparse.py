"""Inference-free learned sparse retrieval behind the retriever protocol: build, open, search.

A checkpoint is a model folder written by `save_checkpoint` (`jaxir.models.saved_model`), with
the idf.json the model was trained with. Without one the model is the backbone
(default all-MiniLM-L6-v2) + the identity-initialised MLM head of `jaxir.methods.sparse`.
The query IDF table is, in order of preference: the `idf` option (an idf.json), the
checkpoint's idf.json, or computed over the corpus being indexed. It is stored in the index.
The index records the model fingerprint; opening it with other weights is refused.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import numpy as np

from jaxir.index.inverted import WEIGHT_DTYPES
from jaxir.retrievers.base import MethodCheckpoints, check_kind, config_option, option, threads_option

METHOD, IDF_FILE = "sparse", "idf.json"
CONFIG = "jaxir.methods.sparse_config:SparseConfig"  # the options below override its fields


CHECKPOINTS = MethodCheckpoints(METHOD, CONFIG, "jaxir.methods.sparse:SparseModel")
load_checkpoint = CHECKPOINTS.load


def save_checkpoint(path: str | Path, config, params, *, idf_file: str | Path | None = None) -> Path:
    """Write a SparseConfig + params as a model folder, with a copy of the idf.json the model was
    trained with (and its sidecar) when given, in the one atomic write."""
    from jaxir.text.idf import idf_files

    return CHECKPOINTS.save(path, config, params, files=idf_files(idf_file, IDF_FILE) if idf_file else None)


def term_weights(tokenizer, vectors) -> list[dict[str, float]]:
    """[(term ids, weights)] -> [{WordPiece: weight}], highest weight first."""
    from jaxir.text.idf import tokenizer_vocab

    vocab = tokenizer_vocab(tokenizer)
    return [{vocab[int(t)]: float(w) for t, w in sorted(zip(terms, weights), key=lambda x: -x[1])}
            for terms, weights in vectors]


@dataclasses.dataclass
class SparseRetriever:
    """MLM-head document weights + IDF-weighted query tokens over an inverted index."""

    checkpoint: str | None = option(None, "trained model folder (default: the backbone + an untrained, seeded head)")
    model: str | None = option(None, "backbone folder when no checkpoint is given (default: embedded all-MiniLM-L6-v2)")
    idf: str | None = option(None, "idf.json for query weights (default: the checkpoint's, else the corpus's)")
    top_k: int | None = config_option(CONFIG, "top_k", help="(default: the checkpoint's)")
    doc_maxlen: int | None = config_option(CONFIG, "doc_maxlen", help="(default: the checkpoint's)")
    doc_windows: int | None = config_option(CONFIG, "doc_windows", help="(default: the checkpoint's)")
    min_idf: float | None = config_option(CONFIG, "min_idf", help="(default: the checkpoint's; 0 when searching)")
    head_scale: float | None = config_option(CONFIG, "head_scale", help="(default: the checkpoint's)")
    prior_stem: bool | None = config_option(CONFIG, "prior_stem", help="(default: the checkpoint's)")
    dtype: str = option("uint8", "posting weights, uint8 | float16 | float32", choices=WEIGHT_DTYPES)
    batch_size: int | None = config_option(CONFIG, "batch_size", search_only=True)
    threads: int | None = threads_option()
    progress: bool = dataclasses.field(default=True, repr=False)
    name: str = dataclasses.field(default=METHOD, init=False)
    index_kind = "learned_sparse"
    checkpoints = CHECKPOINTS
    query_encoder = "idf"  # the queries this method's index serves (its meta says which)

    @classmethod
    def reads_index(cls, meta: dict) -> bool:
        return meta.get("query_encoder", "idf") == cls.query_encoder

    @cached_property
    def _loaded(self):
        """(SparseModel, params), loaded once."""
        return self.checkpoints.load_model(self.checkpoint, {
            "doc_maxlen": self.doc_maxlen, "batch_size": self.batch_size, "top_k": self.top_k,
            "doc_windows": self.doc_windows, "min_idf": self.min_idf, "head_scale": self.head_scale,
            "prior_stem": self.prior_stem}, self.model)

    def _idf_table(self, model, texts) -> tuple[np.ndarray, str]:
        from jaxir.text.idf import compute_idf, load_idf, tokenizer_vocab
        from jaxir.text import tokenize

        vocab = tokenizer_vocab(model.tokenizer)
        if self.idf is not None:
            return load_idf(self.idf, vocab), str(self.idf)
        if self.checkpoint is not None and (Path(self.checkpoint) / IDF_FILE).is_file():
            return load_idf(Path(self.checkpoint) / IDF_FILE, vocab), str(Path(self.checkpoint) / IDF_FILE)
        if getattr(model, "imported_idf", None) is not None:  # e.g. a SparseEncoder's static IDF route
            return model.imported_idf, f"{self.checkpoint} (query route)"
        return compute_idf(tokenize(model.tokenizer, texts, what="document"), len(vocab)), "corpus"

    def encode(self, texts, kind: str = "query") -> list[dict[str, float]]:
        """Document texts -> {WordPiece: weight} per text (the head's positive weights over the
        whole vocabulary, highest first; a lexical prior's corpus statistics are left out).
        Queries are not encoded: a query is its tokens weighted by the index's IDF table."""
        check_kind(kind)
        model, params = self._loaded
        if kind == "query":
            return self._encode_queries(model, params, list(texts))
        return term_weights(model.tokenizer, model.encode_doc_texts(params, list(texts), progress=self.progress))

    def _encode_queries(self, model, params, texts):
        from jaxir.errors import OptionError

        raise OptionError(f"{self.name} encodes no queries: a query is its tokens weighted by the index's "
                          "IDF (search an index; splade encodes queries)")

    def build(self, doc_ids, texts, out) -> Path:
        from jaxir.index.sparse_search import SparseIndex
        from jaxir.methods.lexical_prior import LexicalPrior
        from jaxir.text import tokenize

        model, params = self._loaded
        texts = list(texts)
        idf, idf_source = self._idf_table(model, texts)
        vocab_ids = model.scoring_ids(idf)
        prior = (model.fit_prior(tokenize(model.tokenizer, texts, what="document"))
                 if model.config.lexical_prior else None)  # avgdl of this corpus, as BM25's
        vectors = model.encode_doc_texts(params, texts, vocab_ids=vocab_ids, prior=prior,
                                         progress=self.progress)
        # Queries score on the same vocabulary the documents were encoded over.
        idf = np.where(np.isin(np.arange(len(idf)), vocab_ids), idf, 0.0).astype(np.float32)
        index = SparseIndex.build(vectors, doc_ids=list(doc_ids), idf=idf, tokenizer=model.tokenizer,
                                  skip_ids=model.special_ids, dtype=self.dtype)
        cfg = model.config
        meta = {"checkpoint": self.checkpoint, "idf_source": idf_source, "doc_maxlen": cfg.doc_maxlen,
                "query_encoder": cfg.query_encoder,
                "doc_windows": cfg.doc_windows, "min_idf": cfg.min_idf, "top_k": cfg.top_k,
                **{f"prior_{k}": None if prior is None else v
                   for k, v in (prior or LexicalPrior(avgdl=0.0)).meta().items()},
                "head_scale": cfg.head_scale if cfg.lexical_prior else None}
        return index.save(out, model_fingerprint=model.fingerprint(params), meta=meta)

    def open(self, index_dir) -> "SparseSearcher":
        from jaxir.index.sparse_search import SparseIndex

        from jaxir.errors import IndexFormatError

        model, params = self._loaded
        index = SparseIndex.load(index_dir, tokenizer=model.tokenizer,
                                 model_fingerprint=model.fingerprint(params), min_idf=self.min_idf or 0.0)
        built = index.meta.get("query_encoder", "idf")  # indexes before SPLADE: inference-free
        if built != model.config.query_encoder:
            raise IndexFormatError(f"{index_dir} holds documents for {built!r} queries; this model "
                                   f"encodes {model.config.query_encoder!r} queries: index it with this method")
        # Build-time choices; an index without the key (no prior, or older) has the default.
        for key, flag, default in (("head_scale", "--head-scale", 1.0), ("prior_stem", "--prior-stem", False)):
            built, asked = index.meta.get(key), getattr(self, key)
            built = default if built is None else built
            if asked is not None and built != asked:
                raise ValueError(f"{index_dir} was built with {key} {built}; rebuild it with "
                                 f"{flag} {asked} to change it")
        return self._searcher(index, model, params)

    def _searcher(self, index, model, params):
        from jaxir.index.query_pool import resolve_threads

        return SparseSearcher(index, resolve_threads(1 if self.threads is None else self.threads))


@dataclasses.dataclass
class SparseSearcher:
    index: object
    threads: int = 1

    def search(self, queries, k: int):
        """Query texts -> [(doc ids, scores)] best first (empty for a query with no known term)."""
        return self.index.search_batch(list(queries), k, threads=self.threads)

    def stats(self, queries) -> dict:
        """Index size and query cost: mean non-zeros per document, mean postings read per query."""
        nnz = self.index.inverted.nonzeros_per_doc()
        return {"nonzeros_per_doc": float(np.mean(nnz)) if len(nnz) else 0.0,
                "postings_per_query": float(np.mean([self.index.postings_touched(q) for q in queries]))}

