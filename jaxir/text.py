"""Tokenizer loading (local folder, transformers) and length buckets."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=8)
def _load(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_tokenizer(model_dir: str | Path | None = None):
    """A fast WordPiece tokenizer from a local HF folder (default: embedded MiniLM)."""
    from jaxir.models.hf import resolve_model_dir

    return _load(str(resolve_model_dir(model_dir)))
