"""The backbone's shapes for a plan: a named preset or a local HF BERT config.json; no weights."""
from __future__ import annotations

import json
from pathlib import Path

from jaxir.errors import OptionError

# HF config.json fields of the presets (BERT's uncased WordPiece vocabulary, 512 positions).
_BERT = {"model_type": "bert", "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
PRESETS = {
    # bert-base-uncased (ColBERTv2's backbone): 768 wide, 12 layers, 12 heads, FFN 3072.
    "bert-base": {**_BERT, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 3072},
    # all-MiniLM-L6-v2 (jaxir's embedded default): 384 wide, 6 layers, 12 heads, FFN 1536.
    "minilm": {**_BERT, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
               "intermediate_size": 1536},
    # BertConfig.tiny(): 32 wide, 2 layers, 4 heads, FFN 64 (CI compiles, seconds each).
    "tiny": {**_BERT, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64},
}
_NEEDED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
           "max_position_embeddings")


def backbone_config(spec: str, dtype):
    """(BertConfig in `dtype`, the HF dict, where it came from) of a preset name, a config.json or
    a folder holding one; anything that is not a BERT config is a one-line OptionError."""
    from jaxir.models.bert import BertConfig

    where = f"preset {spec}"
    if spec in PRESETS:
        cfg = PRESETS[spec]
    else:
        path = Path(spec).expanduser()
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise OptionError(f"--backbone {spec}: not a preset ({', '.join(PRESETS)}) nor a config.json "
                              "or a folder holding one")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise OptionError(f"--backbone {spec}: {path} is not readable JSON ({e})") from None
        where = str(path)
    if not isinstance(cfg, dict) or cfg.get("model_type", "bert") != "bert":
        kind = cfg.get("model_type") if isinstance(cfg, dict) else type(cfg).__name__
        raise OptionError(f"--backbone {spec}: {where} is not a BERT config (model_type {kind!r}); give "
                          f"{', '.join(PRESETS)} or a BERT config.json")
    missing = [k for k in _NEEDED if not isinstance(cfg.get(k), int) or cfg[k] < 1]
    if missing:
        raise OptionError(f"--backbone {spec}: {where} is not a BERT config (no positive integer "
                          f"{', '.join(missing)})")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise OptionError(f"--backbone {spec}: hidden_size {cfg['hidden_size']} is not divisible by "
                          f"num_attention_heads {cfg['num_attention_heads']}")
    return BertConfig.from_hf(cfg, dtype=dtype), cfg, where


def recipe_backbone(r, spec: str | None = None):
    """(spec, BertConfig in the recipe config `r`'s compute dtype, the HF dict, where it came
    from) of `spec`, by default the folder of the recipe's model (its config.json only)."""
    from jaxir.text.model_dir import resolve_model_dir
    from jaxir.training.step import COMPUTE_DTYPES

    spec = spec or str(resolve_model_dir(r.model.model))
    return (spec, *backbone_config(spec, COMPUTE_DTYPES[r.fit.compute_dtype]))


def tokenizer_dir(spec: str) -> Path | None:
    """The folder whose tokenizer the plan uses: the backbone's when it has one, else None (the
    embedded MiniLM's: BERT's uncased vocabulary; only the batch's shapes matter)."""
    path = Path(spec).expanduser()
    folder = path if path.is_dir() else path.parent
    if spec not in PRESETS and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        return folder
    return None


def describe(bert) -> str:
    return (f"{bert.hidden_size}/{bert.num_layers}/{bert.num_heads}/{bert.intermediate_size} "
            f"(hidden/layers/heads/FFN)")
