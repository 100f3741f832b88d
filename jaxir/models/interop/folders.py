"""Writing a foreign-layout folder: atomically, one writer at a time, with the tokenizer."""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from jaxir.fs import replace_folder, temp_folder_beside, writer_lock

MARKER = "config.json"  # every layout has one; replace_folder only replaces such folders


@contextlib.contextmanager
def new_folder(out, what: str):
    """Yield a temp folder beside `out`; on success it replaces `out` (which must be a model
    folder with a config.json if it exists), on error it is removed."""
    out = Path(out).resolve()
    with writer_lock(out, marker=MARKER):
        tmp = temp_folder_beside(out)
        try:
            yield tmp
            replace_folder(tmp, out, marker=MARKER, what=what)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def save_tokenizer(tokenizer, folder: Path, max_length: int) -> None:
    """The tokenizer files, with a real model_max_length (jaxir's loader lifts it to 1e9 because
    it truncates itself; the PyTorch tools rely on it)."""
    saved = tokenizer.model_max_length
    tokenizer.model_max_length = max_length
    try:
        tokenizer.save_pretrained(str(folder))
    finally:
        tokenizer.model_max_length = saved
