"""ColBERT checkpoints of colbert-ai and PyLate <-> jaxir's ColBERTModel.

colbert-ai (v0.2, `BaseColBERT.save`): one folder, config.json with architectures ["HF_ColBERT"],
weights `bert.*` + `linear.weight` [dim, H], and artifact.metadata (the ColBERTConfig as JSON:
query/doc max lengths, markers [unused0]/[unused1], mask_punctuation, attend_to_mask_tokens).

PyLate (v1.6, `ColBERT.save`): sentence-transformers modules: the BERT at the root (BertModel
names), then `pylate.models.Dense.Dense` modules (`<dir>/model.safetensors`, `linear.weight`),
and config_sentence_transformers.json with query/document prefixes (added tokens "[Q] "/"[D] ",
so the vocabulary grows by two), lengths, skiplist_words and the expansion settings.

Both tokenise as jaxir does: [CLS] marker text [SEP], queries padded with [MASK] to their length
(not attended unless attend_to_mask_tokens), documents' punctuation masked after encoding, L2
normalised projections. Settings with no jaxir equivalent are refused by name.
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError
from jaxir.models.hf import (bert_from_weights, export_bert_weights, hf_config_dict, read_weights,
                             write_weights)
from jaxir.interop.detect import folder_tokenizer, read_json
from jaxir.interop.folders import new_folder, save_tokenizer, write_json

PUNCTUATION = list(string.punctuation)
IDENTITY = "torch.nn.modules.linear.Identity"
PYLATE_DENSE = "pylate.models.Dense.Dense"
ST_TRANSFORMER = "sentence_transformers.models.Transformer"


def import_folder(path, fmt: str, overrides: dict):
    path = Path(path)
    settings, root, kernel, where, weights = (_read_colbert_ai if fmt == "colbert-ai" else _read_pylate)(path)
    return _build(root, settings, kernel, overrides, weights) + (where,)


def _build(root: Path, settings: dict, kernel: np.ndarray, overrides: dict, weights: dict):
    from jaxir.methods.colbert import ColBERTModel
    from jaxir.methods.colbert_config import ColBERTConfig

    weights = {k: v for k, v in weights.items() if k != "linear.weight"}
    bert_config, bert = bert_from_weights(root, weights)
    if kernel.shape[0] != bert_config.hidden_size:
        raise CheckpointError(f"{root}: the projection reads {kernel.shape[0]} features, the BERT "
                              f"has hidden_size {bert_config.hidden_size}")
    lowercase = settings.pop("lowercase_input", False)
    config = ColBERTConfig(model=str(root.resolve()), dim=int(kernel.shape[1]), **{**settings, **overrides})
    tokenizer = folder_tokenizer(root)
    if lowercase and not getattr(tokenizer, "do_lower_case", False):
        raise CheckpointError(f"{root / 'sentence_bert_config.json'}: do_lower_case true over a cased "
                              "tokenizer is not supported (jaxir does not lowercase the text itself)")
    try:
        model = ColBERTModel(config, bert_config=bert_config, bert_params=bert, tokenizer=tokenizer)
    except ValueError as e:  # e.g. a marker the tokenizer lacks
        raise CheckpointError(f"{root}: {e}") from e
    params = {"bert": bert, "projection": {"dense": {"kernel": np.ascontiguousarray(kernel, np.float32)}}}
    return model, params


def _read_colbert_ai(path: Path):
    meta_file = path / "artifact.metadata"
    if not meta_file.is_file():
        raise CheckpointError(f"{path} has no artifact.metadata (colbert-ai's ColBERTConfig)")
    meta = read_json(meta_file)
    meta = meta.get("config", meta)
    for key, want in (("similarity", "cosine"), ("interaction", "colbert"), ("relu", False), ("pool_factor", 1)):
        if meta.get(key, want) != want:
            raise CheckpointError(f"{meta_file}: {key} = {meta[key]!r} is not supported (jaxir: {want!r})")
    weights = read_weights(path)
    if "linear.weight" not in weights:
        raise CheckpointError(f"{path}: the weights have no linear.weight (ColBERT's projection)")
    settings = {"query_maxlen": int(meta.get("query_maxlen", 32)), "doc_maxlen": int(meta.get("doc_maxlen", 220)),  # colbert-ai's defaults
                "mask_punctuation": bool(meta.get("mask_punctuation", True)),
                "attend_to_mask_tokens": bool(meta.get("attend_to_mask_tokens", False)),
                "query_marker": meta.get("query_token_id", "[unused0]"),
                "doc_marker": meta.get("doc_token_id", "[unused1]")}
    version = meta.get("meta", {}).get("version", "unknown version")
    return settings, path, weights["linear.weight"].T, f"colbert-ai {version}", weights


def _read_pylate(path: Path):
    modules = read_json(path / "modules.json")
    if not modules or modules[0].get("type") != ST_TRANSFORMER:
        raise CheckpointError(f"{path / 'modules.json'}: the first module must be {ST_TRANSFORMER}")
    root = path / modules[0].get("path", "")
    kernel = None
    for m in modules[1:]:
        if m.get("type") != PYLATE_DENSE:
            raise CheckpointError(f"{path / 'modules.json'}: module {m.get('type')!r} is not supported "
                                  f"(jaxir's ColBERT is BERT + linear projections)")
        folder = path / m["path"]
        cfg = read_json(folder / "config.json")
        dense = read_weights(folder)
        # PyLate's Dense has a bias unless its config says otherwise
        if cfg.get("bias", True) or "linear.bias" in dense or cfg.get("use_residual") or \
                cfg.get("activation_function", IDENTITY) != IDENTITY:
            raise CheckpointError(f"{folder / 'config.json'}: a Dense with bias, residual or activation "
                                  f"{cfg.get('activation_function')!r} is not supported (only linear maps)")
        w = dense["linear.weight"].astype(np.float64).T  # [in, out]
        kernel = w if kernel is None else kernel @ w  # consecutive linear maps compose exactly
    if kernel is None:
        raise CheckpointError(f"{path / 'modules.json'}: no Dense projection after the BERT")
    st_file = path / "config_sentence_transformers.json"
    st = read_json(st_file) if st_file.is_file() else {}
    if st.get("do_query_expansion", True) is False:
        raise CheckpointError(f"{st_file}: do_query_expansion false is not supported (jaxir always "
                              "pads queries with [MASK])")
    prompt = (st.get("prompts") or {}).get(st.get("default_prompt_name") or "", "")
    if prompt:
        raise CheckpointError(f"{st_file}: a default prompt ({prompt!r}) put before every text is not supported")
    skip = st.get("skiplist_words", PUNCTUATION)
    if skip not in (PUNCTUATION, []):
        raise CheckpointError(f"{st_file}: skiplist_words other than string.punctuation (or none) "
                              "are not supported")
    markers = {}
    for key, field in (("query_prefix", "query_marker"), ("document_prefix", "doc_marker")):
        value = st.get(key)
        value = {"query_prefix": "[Q] ", "document_prefix": "[D] "}[key] if value is None else value
        if value == "":
            raise CheckpointError(f"{st_file}: an empty {key} is not supported (ColBERT has markers)")
        markers[field] = value
    settings = {"query_maxlen": int(st.get("query_length") or 32),
                "doc_maxlen": int(st.get("document_length") or 180),
                "mask_punctuation": bool(skip),
                "attend_to_mask_tokens": bool(st.get("attend_to_expansion_tokens", False)), **markers}
    sbert = root / "sentence_bert_config.json"
    settings["lowercase_input"] = bool(read_json(sbert).get("do_lower_case")) if sbert.is_file() else False
    version = st.get("__version__", {}).get("pylate") or \
        f"sentence-transformers {st.get('__version__', {}).get('sentence_transformers', '?')}"
    return settings, root, kernel.astype(np.float32), f"PyLate ColBERT, {version}", read_weights(root)


def export_folder(model, params, fmt: str, out, files: dict, *, force: bool = False) -> Path:
    del files
    cfg, bc = model.config, model.bert_config
    linear = np.asarray(params["projection"]["dense"]["kernel"], np.float32).T  # [dim, H]
    with new_folder(out, fmt, force=force) as tmp:
        save_tokenizer(model.tokenizer, tmp, bc.max_position)
        if fmt == "colbert-ai":
            write_json(tmp / "config.json", hf_config_dict(bc, ["HF_ColBERT"]))
            write_weights(tmp / "model.safetensors",
                          {**export_bert_weights(params["bert"], bc.num_layers, "bert."), "linear.weight": linear})
            write_json(tmp / "artifact.metadata", {
                "query_token_id": cfg.query_marker, "doc_token_id": cfg.doc_marker,
                "query_token": "[Q]", "doc_token": "[D]", "similarity": "cosine",
                "interaction": "colbert", "relu": False, "query_maxlen": cfg.query_maxlen,
                "doc_maxlen": cfg.doc_maxlen, "dim": cfg.dim, "mask_punctuation": cfg.mask_punctuation,
                "attend_to_mask_tokens": cfg.attend_to_mask_tokens,
                "meta": {"version": "colbert-v0.4", "exported_by": "jaxir"}})
        else:
            write_json(tmp / "config.json", hf_config_dict(bc, ["BertModel"]))
            write_weights(tmp / "model.safetensors", export_bert_weights(params["bert"], bc.num_layers))
            write_json(tmp / "sentence_bert_config.json", {"max_seq_length": cfg.doc_maxlen, "do_lower_case": False})
            write_json(tmp / "modules.json", [
                {"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
                {"idx": 1, "name": "1", "path": "1_Dense", "type": PYLATE_DENSE}])
            write_json(tmp / "1_Dense" / "config.json", {
                "in_features": bc.hidden_size, "out_features": cfg.dim, "bias": False,
                "activation_function": IDENTITY, "use_residual": False})
            write_weights(tmp / "1_Dense" / "model.safetensors", {"linear.weight": linear})
            write_json(tmp / "config_sentence_transformers.json", {
                "prompts": {"query": "", "document": ""}, "default_prompt_name": None,
                "similarity_fn_name": "MaxSim", "query_prefix": cfg.query_marker,
                "document_prefix": cfg.doc_marker, "query_length": cfg.query_maxlen,
                "document_length": cfg.doc_maxlen,
                "attend_to_expansion_tokens": cfg.attend_to_mask_tokens,
                "skiplist_words": PUNCTUATION if cfg.mask_punctuation else [],
                "do_query_expansion": True})
    return Path(out)

