"""Document-side stemming over a WordPiece vocabulary (NumPy + PyStemmer, no model).

An inference-free query is its WordPieces and their IDF, so "cells" never matches a document that
only says "cell". Word-level BM25 closes that with a stemmer on both sides; here only the document
side may change. Whole-word vocabulary entries (alphabetic, no "##") that share a Snowball stem
form a class ("cell", "cells"). In a document, every *complete-word* occurrence of a class member
counts toward one class tf, and the class's weight is written to every member id, so a query word
matches any inflection the document used. Pieces of longer words ("cell" in "cell ##ular") keep
their own id, as in plain WordPiece BM25. Query weights stay the corpus IDF of each WordPiece, so
a document is expanded only towards inflections that some document of the corpus uses.

Why: on SciFact test it lifts the WordPiece BM25 prior from 0.6751 to 0.6792 nDCG@10 (neutral on the
train queries) and the prior + 0.25 x head index from 0.6802 to 0.6900, nominally above word-level
BM25's 0.6863 but within noise (docs/results-log.md, "Document-side stemming of the lexical prior").
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


class StemClasses:
    """Classes of whole-word WordPieces sharing a stem (only classes with >= 2 members are kept)."""

    def __init__(self, vocab: Sequence[str], *, skip_ids=(), language: str = "english"):
        import Stemmer  # PyStemmer, as the word analyzer uses

        stem = Stemmer.Stemmer(language).stemWord
        skip = set(int(i) for i in skip_ids)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, tok in enumerate(vocab):
            if tok and tok.isalpha() and i not in skip:  # "##..." is not alphabetic
                groups[stem(tok.lower())].append(i)
        members = [sorted(ids) for ids in groups.values() if len(ids) > 1]
        members.sort()
        self.vocab_size = len(vocab)
        self.language = language
        # class of each token id (-1: none) and whether the id continues a word ("##...").
        self.class_of = np.full(len(vocab), -1, np.int64)
        for c, ids in enumerate(members):
            self.class_of[ids] = c
        self.continues = np.array([bool(t) and t.startswith("##") for t in vocab])
        self.offsets = np.concatenate([[0], np.cumsum([len(m) for m in members])]).astype(np.int64)
        self.member_ids = np.array([i for m in members for i in m], np.int64)

    @classmethod
    def from_tokenizer(cls, tokenizer, *, skip_ids=(), language: str = "english") -> "StemClasses":
        from jaxir.text.idf import tokenizer_vocab

        return cls(tokenizer_vocab(tokenizer), skip_ids=skip_ids, language=language)

    @property
    def n_classes(self) -> int:
        return len(self.offsets) - 1

    def members(self, c: int) -> np.ndarray:
        return self.member_ids[self.offsets[c]: self.offsets[c + 1]]

    def keys(self, token_ids: Sequence[int]) -> np.ndarray:
        """Per position: the token id, or vocab_size + class for a complete word with a class."""
        t = np.asarray(token_ids, np.int64)
        whole = ~self.continues[t]
        whole[:-1] &= ~self.continues[t[1:]]  # the next piece does not continue this word
        c = self.class_of[t]
        return np.where(whole & (c >= 0), self.vocab_size + c, t)

    def expand(self, keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct keys and their weights -> (token ids ascending, weights float64).

        A class key writes its weight to every member; where a member also occurs as a word piece
        of its own, the larger weight is kept.
        """
        keys = np.asarray(keys, np.int64)
        weights = np.asarray(weights, np.float64)
        is_class = keys >= self.vocab_size
        c = keys[is_class] - self.vocab_size
        sizes = self.offsets[c + 1] - self.offsets[c]
        starts = np.repeat(self.offsets[c], sizes) + (np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes))
        ids = np.concatenate([keys[~is_class], self.member_ids[starts]])
        vals = np.concatenate([weights[~is_class], np.repeat(weights[is_class], sizes)])
        uniq, inverse = np.unique(ids, return_inverse=True)
        best = np.full(len(uniq), -np.inf)
        np.maximum.at(best, inverse, vals)
        return uniq, best
