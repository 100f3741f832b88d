"""`jaxir idf`: an OpenSearch-style idf.json over a BEIR corpus (reads BEIR, so above the text floor)."""
from __future__ import annotations

from pathlib import Path

from jaxir.errors import DataError
from jaxir.text.idf import document_frequencies, idf_from_df, save_idf, tokenizer_vocab


def build_idf_file(data: str | Path, out: str | Path, *, model: str | None = None,
                   split: str = "test") -> tuple[Path, int]:
    """`jaxir idf --data BEIR_DIR --out idf.json`: IDF over a BEIR corpus (title + text).

    Texts are WordPiece-tokenised without special tokens and without truncation.
    Returns (path, number of documents).
    """
    from jaxir.eval.beir import load_beir
    from jaxir.text import load_tokenizer

    tokenizer = load_tokenizer(model)
    texts = load_beir(data, split=split).doc_texts()
    vocab = tokenizer_vocab(tokenizer)

    def token_lists():
        for start in range(0, len(texts), 1024):
            yield from tokenizer(texts[start:start + 1024], add_special_tokens=False)["input_ids"]

    df, n_docs = document_frequencies(token_lists(), len(vocab))
    if n_docs == 0:
        raise DataError(f"{data}: the corpus is empty")
    idf = idf_from_df(df, n_docs)
    return save_idf(out, idf, vocab, n_docs=n_docs), n_docs
