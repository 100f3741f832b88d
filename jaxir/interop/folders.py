"""Writing a foreign-layout folder: atomically, one writer at a time, with the tokenizer.

Every folder `jaxir export-model` writes holds `jaxir_export.json` ({"format": "jaxir-export",
"version": 1, "layout": ...}; the PyTorch tools ignore it). Only such a folder is ever replaced,
and only when asked to (`force`); anything else at the output path is left as it is.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from jaxir.errors import CheckpointError, OptionError
from jaxir.fs import replace_folder, temp_folder_beside
from jaxir.fs_lock import writer_lock

EXPORT_FILE = "jaxir_export.json"
EXPORT_FORMAT, EXPORT_VERSION = "jaxir-export", 1
EXPORT_LAYOUTS = ("colbert-ai", "pylate", "hf-mlm", "sentence-transformers")


def read_export_info(path) -> dict:
    """The export record of a folder jaxir export-model wrote; CheckpointError naming what the
    folder is otherwise (its identity fields are checked, as the loaders check model.json's)."""
    path = Path(path)
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file" if path.exists() else f"no folder at {path}")
    file = path / EXPORT_FILE
    if not file.is_file():
        names = sorted(p.name for p in path.iterdir())
        held = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") if names else "nothing"
        raise CheckpointError(f"{path} holds {held} but no {EXPORT_FILE}: not a folder jaxir export-model wrote")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT or info.get("version") != EXPORT_VERSION \
            or info.get("layout") not in EXPORT_LAYOUTS:
        found = (info.get("format"), info.get("version"), info.get("layout")) if isinstance(info, dict) else info
        raise CheckpointError(f"{file}: format, version, layout {found!r}; this jaxir writes "
                              f"{EXPORT_FORMAT!r} version {EXPORT_VERSION} of {', '.join(EXPORT_LAYOUTS)}")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has a {EXPORT_FILE} but no config.json (incomplete)")
    return info


def check_replaceable(out, *, force: bool) -> None:
    """Nothing at `out`, or a folder jaxir export-model wrote and `force`: else an OptionError
    naming what is there (nothing is changed)."""
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    try:
        info = read_export_info(out)
    except CheckpointError as e:
        raise OptionError(f"--out {out} exists and is not a model folder jaxir exported ({e}): "
                          "refusing to replace it") from None
    if not force:
        raise OptionError(f"--out {out} already holds a {info['layout']} folder jaxir exported: "
                          "pass --force to replace it")


@contextlib.contextmanager
def new_folder(out, fmt: str, *, force: bool = False):
    """Yield a temp folder beside `out`; on success it gets the export record and replaces `out`
    (which, if it exists, must be a folder jaxir exported, and `force` given), on error it is
    removed."""
    out = Path(os.path.abspath(out))
    with writer_lock(out, marker=EXPORT_FILE):
        check_replaceable(out, force=force)  # under the lock: also what appeared while waiting
        tmp = temp_folder_beside(out)
        try:
            yield tmp
            write_json(tmp / EXPORT_FILE, {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "layout": fmt})
            replace_folder(tmp, out, marker=EXPORT_FILE, what=f"a {fmt} model folder", check=read_export_info)
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
