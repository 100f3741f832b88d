"""The pure-Python WordPiece query path gives the Rust tokenizer's ids on every input."""
import gzip
import json
import random

import pytest

from jaxir.text import load_tokenizer, single_text_encoder
from jaxir.text.wordpiece import WordPiece, fast_encoder


@pytest.fixture(scope="module")
def encoders():
    tok = load_tokenizer()
    backend = type(tok.backend_tokenizer).from_str(tok.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    fast = fast_encoder(backend)
    assert fast is not None  # MiniLM is uncased BERT WordPiece: the fast path must be taken
    return fast, lambda text: backend.encode(text, add_special_tokens=False).ids


def test_same_ids_as_rust_on_beir_queries(encoders, scifact_dir, nfcorpus_dir):
    fast, rust = encoders
    texts = [json.loads(line)["text"] for d in (scifact_dir, nfcorpus_dir)
             for line in gzip.open(d / "queries.jsonl.gz", "rt")]
    assert len(texts) > 4000
    assert [i for i, t in enumerate(texts) if fast(t) != rust(t)] == []


def test_same_ids_as_rust_on_edge_cases(encoders):
    fast, rust = encoders
    rng = random.Random(0)
    alphabet = "abcXYZ019 .,-'[]#\t\n\r\x0b\x1c\x7f\u00e9\u4e2d"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(5000)]
    texts += ["x" * n for n in (99, 100, 101)]  # the 100-character word limit -> [UNK]
    texts += ["what is [MASK] here", "[CLS] statins [SEP]", "[mask]", "##ing", "unaffable qzxv", "CAF\u00c9 caf\u00e9"]
    assert [t for t in texts if fast(t) != rust(t)] == []


def test_single_text_encoder_uses_it(encoders):
    enc = single_text_encoder(load_tokenizer())
    fast, _ = encoders
    assert enc("Statins lower LDL-cholesterol.") == fast("Statins lower LDL-cholesterol.")


def test_greedy_longest_match():
    wp = WordPiece({"un": 1, "##aff": 2, "##able": 3, "##a": 4, "[UNK]": 0}, unk_id=0)
    assert wp.word("unaffable") == [1, 2, 3]
    assert wp.word("unx") == [0]  # no piece for "x": the whole word is unknown
    assert wp.word("una") == [1, 4]


def test_other_tokenizers_are_not_taken(encoders):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    cased = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    cased.normalizer = normalizers.BertNormalizer(lowercase=False)
    cased.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    assert fast_encoder(cased) is None
    cased.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    assert fast_encoder(cased) is None
