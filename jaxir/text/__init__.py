"""The ground floor: text -> token ids, NumPy and tokenizers only (never jax).

tokenize     tokenizer loading, batch assembly into length buckets (no recompiles)
wordpiece    exact pure-Python WordPiece for short uncased queries
idf          IDF tables (idf.json) over WordPiece ids
analysis     BM25's word / WordPiece analyzers
bm25_weights BM25's tf saturation and Lucene weights
model_dir    where the embedded backbone (or a local HF folder) lives
Both the index runtime and the methods look down to this package.
"""
from jaxir.text.tokenize import (DEFAULT_BUCKETS, Batch, assemble, assemble_windows,  # noqa: F401
                                 bucket_length, length_sorted_batches, load_tokenizer,
                                 single_text_encoder, tokenize)
