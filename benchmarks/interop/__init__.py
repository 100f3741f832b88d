"""Interop parity: jaxir against the PyTorch tools' checkpoints and indexes (PyLate, colbert-ai,
sentence-transformers, transformers, Lucene through pyserini)."""
