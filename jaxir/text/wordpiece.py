"""A pure-Python BERT WordPiece encoder for short printable-ASCII strings (search queries).

Why: a query is ~10 words, and one call into the Rust tokenizer costs ~50 us, most of it call
and object overhead: a quarter of a learned-sparse search. For printable ASCII the uncased BERT
pipeline is simple enough to repeat exactly here: lowercase, split on whitespace and ASCII
punctuation, then greedy longest-match WordPiece over the vocabulary dict. Any other string
(non-ASCII, control characters, text that could hold an added token such as "[MASK]") goes to
the Rust tokenizer, so the ids are always the ones the tokenizer would give.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable

# After lowercasing printable ASCII, every character is a letter/digit, whitespace or one of
# the 32 ASCII punctuation marks, each of which BERT splits off as its own word.
_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")


class WordPiece:
    """Greedy longest-match-first WordPiece over a vocabulary {piece: id}."""

    def __init__(self, vocab: dict[str, int], unk_id: int, prefix: str = "##", max_chars: int = 100):
        self.vocab, self.unk_id, self.prefix, self.max_chars = vocab, unk_id, prefix, max_chars
        self._words: dict[str, list[int]] = {}  # word -> pieces, for words that split

    def word(self, word: str) -> list[int]:
        whole = self.vocab.get(word)
        if whole is not None:
            return [whole]
        cached = self._words.get(word)
        if cached is not None:
            return cached
        pieces = self._split(word)
        if len(self._words) < 100_000:
            self._words[word] = pieces
        return pieces

    def _split(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk_id]
        out, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                hit = self.vocab.get(piece)
                if hit is not None:
                    out.append(hit)
                    start = end
                    break
            else:  # no piece matches: the whole word is unknown
                return [self.unk_id]
        return out


def fast_encoder(backend) -> Callable[[str], list[int]] | None:
    """``text -> ids`` for an uncased BERT WordPiece backend (tokenizers.Tokenizer), else None.

    Falls back to `backend.encode` for any string outside the exactly reproduced subset.
    """
    config = json.loads(backend.to_str())
    norm, pre, model = config.get("normalizer") or {}, config.get("pre_tokenizer") or {}, config.get("model") or {}
    if not (norm.get("type") == "BertNormalizer" and norm.get("lowercase") and norm.get("strip_accents") in (None, True)
            and pre.get("type") == "BertPreTokenizer" and model.get("type") == "WordPiece"
            and model.get("unk_token") in model.get("vocab", {})):
        return None
    vocab = model["vocab"]
    pieces = WordPiece(vocab, vocab[model["unk_token"]], model.get("continuing_subword_prefix", "##"),
                       model.get("max_input_chars_per_word", 100))
    # Added tokens ([CLS], [MASK], ...) are matched in the raw text before normalisation.
    added = tuple({t["content"].lower() for t in config.get("added_tokens", [])})
    word = pieces.word

    def encode(text: str) -> list[int]:
        lower = text.lower()
        if not _PLAIN.fullmatch(text) or any(a in lower for a in added):
            return backend.encode(text, add_special_tokens=False).ids
        out: list[int] = []
        for w in _WORDS.findall(lower):
            out.extend(word(w))
        return out

    return encode
