"""Which layout a checkpoint folder has (jaxir's own or one of the PyTorch tools')."""
from __future__ import annotations

import json
from pathlib import Path

from jaxir.errors import CheckpointError

FOREIGN_FORMATS = ("colbert-ai", "pylate", "hf-mlm", "sentence-transformers", "sentence-transformers-sparse")
METHOD_OF = {"colbert-ai": "colbert", "pylate": "colbert", "hf-mlm": "sparse",
             "sentence-transformers": "cross-encoder", "sentence-transformers-sparse": "sparse"}
ROUTER = "sentence_transformers.base.modules.router.Router"
# config.json architectures -> layout
ARCHITECTURES = {"HF_ColBERT": "colbert-ai", "BertForMaskedLM": "hf-mlm",
                 "BertForSequenceClassification": "sentence-transformers"}


def read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: not readable JSON ({e})") from e


def detect_format(path, *, method: str | None = None) -> str:
    """"jaxir" or a FOREIGN_FORMATS name; CheckpointError naming the file that rules it out, or
    naming the method that reads the layout when `method` cannot."""
    path = Path(path)
    if not path.is_dir() or (path / "model.json").is_file():
        return "jaxir"  # (a missing folder is reported by the jaxir loader, which may recover it)
    fmt = _foreign(path)
    if method is not None and METHOD_OF[fmt] != method:
        raise CheckpointError(f"{path} is a {fmt} checkpoint of a {METHOD_OF[fmt]} model; "
                              f"--method {METHOD_OF[fmt]} reads it, not {method}")
    return fmt


def _foreign(path: Path) -> str:
    config_file, modular_ce = path / "config.json", False
    if (path / "modules.json").is_file():
        modules = read_json(path / "modules.json")
        types = [m.get("type", "") for m in modules]
        if any(t.startswith("pylate.") for t in types):
            return "pylate"
        if types == [ROUTER]:  # a SparseEncoder with query and document routes
            return "sentence-transformers-sparse"
        # a CrossEncoder of several modules (as jaxir exports one without BERT's pooler: Transformer,
        # Pooling, Dense); sentence-transformers >= 6 wraps a BertForSequenceClassification in one
        # Transformer module at the root, and the architecture below decides
        modular_ce = len(modules) > 1 and _st_model_type(path) == "CrossEncoder"
        one_transformer = len(modules) == 1 and modules[0].get("path", "") == "" and types[0].endswith("Transformer")
        if not (modular_ce or one_transformer):
            raise CheckpointError(f"{path / 'modules.json'}: sentence-transformers modules {types} are "
                                  "not a layout jaxir imports (PyLate ColBERT and CrossEncoder are); "
                                  "a plain BERT backbone goes to --model")
    if not config_file.is_file():
        raise CheckpointError(f"{path} is neither a jaxir model folder (no model.json) nor a "
                              "Hugging Face one (no config.json)")
    config = read_json(config_file)
    if config.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{config_file}: model_type {config.get('model_type')!r} "
                              f"({', '.join(config.get('architectures') or [])}) is not supported: "
                              "the Flax encoder is BERT")
    if modular_ce:
        return "sentence-transformers"
    if (path / "artifact.metadata").is_file():
        return "colbert-ai"
    for arch in config.get("architectures") or []:
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch]
    raise CheckpointError(f"{config_file}: architectures {config.get('architectures')} are not a "
                          f"checkpoint layout jaxir imports (known: {', '.join(ARCHITECTURES)}); "
                          "a plain BERT backbone goes to --model")


def _st_model_type(path: Path) -> str | None:
    file = path / "config_sentence_transformers.json"
    return read_json(file).get("model_type") if file.is_file() else None


def folder_tokenizer(path: Path):
    """The folder's own tokenizer; CheckpointError naming the files when it has none."""
    from jaxir.text import load_tokenizer

    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise CheckpointError(f"{path} has no tokenizer (tokenizer.json or vocab.txt)")
    return load_tokenizer(path)


def tokenizer_max_length(path: Path, default: int = 512) -> int:
    """tokenizer_config.json's model_max_length (the length the PyTorch tools truncate at)."""
    file = path / "tokenizer_config.json"
    value = read_json(file).get("model_max_length") if file.is_file() else None
    return int(value) if isinstance(value, (int, float)) and 0 < value < 10**6 else default
