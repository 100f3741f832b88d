"""Text analyzers for lexical retrieval: text -> list of term strings.

`word` (the BM25 default, token for token what bm25s produces with stopwords="en" and a PyStemmer
English stemmer): lowercase -> regex (?u)\\b\\w\\w+\\b -> drop English stopwords (Lucene's 33-word
list, which is bm25s's "en" list) -> Snowball English stem (cached per word).

`wordpiece`: the WordPiece tokens of `jaxir.text.load_tokenizer()`, no special tokens, so lexical
and neural models can share one vocabulary.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from itertools import filterfalse

ANALYZERS = ("word", "wordpiece")

# Lucene's EnglishAnalyzer stop set (also bm25s's STOPWORDS_EN for "en"/"english").
STOPWORDS_EN = frozenset("""
a an and are as at be but by for if in into is it no not of on or such that the their then there
these they this to was will with
""".split())

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
_MAX_CACHE = 1_000_000


class _StemCache(dict):
    """word -> stem; a miss stems the word once (the Python call happens only on misses)."""

    def __init__(self, stemmer):
        super().__init__()
        self._stem_word = stemmer.stemWord

    def __missing__(self, word: str) -> str:
        if len(self) > _MAX_CACHE:
            self.clear()
        stem = self[word] = self._stem_word(word)
        return stem


class WordAnalyzer:
    """lowercase, regex split, stopword removal, optional Snowball stemming with a word cache."""

    def __init__(self, *, stopwords: frozenset[str] = STOPWORDS_EN, stemmer: str | None = "english"):
        self.stopwords = frozenset(stopwords)
        self.stemmer_language = stemmer
        self._stems = None
        if stemmer is not None:
            import Stemmer  # PyStemmer; imported here so `jaxir.index` loads without it

            self._stems = _StemCache(Stemmer.Stemmer(stemmer))

    @property
    def fingerprint(self) -> str:
        return f"word:lower:\\b\\w\\w+\\b:stop{len(self.stopwords)}:{self.stemmer_language}"

    def __call__(self, text: str) -> list[str]:
        # map/filterfalse keep the per-token loop in C; this runs once per document at build time.
        words = filterfalse(self.stopwords.__contains__, TOKEN_PATTERN.findall(text.lower()))
        return list(map(self._stems.__getitem__, words)) if self._stems is not None else list(words)


class WordPieceAnalyzer:
    """WordPiece sub-word strings from a local tokenizer folder (default: the embedded MiniLM)."""

    def __init__(self, model_dir=None):
        from jaxir.text.tokenize import load_tokenizer  # lazy: pulls in transformers

        self._tokenizer = load_tokenizer(model_dir)
        # The transformers wrapper may reset its Rust backend's truncation inside a call; two
        # search threads doing that at once fail ("Already borrowed"), so calls take turns.
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return f"wordpiece:{len(self._tokenizer)}"

    def __call__(self, text: str) -> list[str]:
        with self._lock:
            return self._tokenizer.tokenize(text)


def get_analyzer(name: str) -> Callable[[str], list[str]]:
    """An analyzer by name: "word" or "wordpiece"."""
    if name == "word":
        return WordAnalyzer()
    if name == "wordpiece":
        return WordPieceAnalyzer()
    raise ValueError(f"analyzer must be one of {ANALYZERS}, got {name!r}")
