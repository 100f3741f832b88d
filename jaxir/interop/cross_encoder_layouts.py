"""Cross-encoders of sentence-transformers <-> jaxir's CrossEncoderModel. The layout follows the
model's head; both are the `sentence-transformers` format and both import:

  with `pooler`, s = w . tanh(P [CLS] + c) + b: BertForSequenceClassification, num_labels 1 (every
      BERT CrossEncoder on the Hub). sentence-transformers 6 saves it as one Transformer module
      (sequence-classification) at the folder's root; older versions and plain transformers
      folders have only config.json + weights.
  without (the recipe's default; every checkpoint from before the option), s = w . [CLS] + b:
      the modules Transformer (BertModel without pooler, feature-extraction) -> Pooling("cls")
      -> Dense(H -> 1, Identity) writing "scores", which compute exactly that.
      BertForSequenceClassification cannot: it always applies tanh(P h + c), bounded in (-1, 1),
      so no pooler weights make it a head on [CLS] itself. Needs sentence-transformers >= 6 (the
      modular CrossEncoder); older versions, like transformers' AutoModelForSequenceClassification,
      would read only config.json (a BertModel) and add a new, random pooler and head.

config_sentence_transformers.json holds the activation_fn (Sigmoid by default); jaxir scores
are the logits (before any activation).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError
from jaxir.models.hf import bert_from_weights, export_bert_weights, hf_config_dict, read_weights, to_f32, write_weights
from jaxir.interop.colbert_layouts import IDENTITY
from jaxir.interop.detect import folder_tokenizer, read_json, tokenizer_max_length
from jaxir.interop.folders import new_folder, save_tokenizer, write_json

ST_TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
ST_POOLING = "sentence_transformers.sentence_transformer.modules.pooling.Pooling"
ST_DENSE = "sentence_transformers.base.modules.dense.Dense"
CLASSIFIER = "BertForSequenceClassification"
MODULAR = "CrossEncoder modules Transformer, Pooling cls, Dense"
# the score head as sentence-transformers' Dense config records it
SCORE_DENSE = {"out_features": 1, "bias": True, "activation_function": IDENTITY,
               "module_input_name": "sentence_embedding", "module_output_name": "scores"}


def import_folder(path, fmt: str, overrides: dict):
    from jaxir.methods.cross_encoder import CrossEncoderModel
    from jaxir.methods.cross_encoder_config import CrossEncoderConfig

    del fmt
    path = Path(path)
    modular = (path / "modules.json").is_file() and len(read_json(path / "modules.json")) > 1
    bert_config, params = (_read_modular if modular else _read_classifier)(path)
    sbert = path / "sentence_bert_config.json"
    length = read_json(sbert).get("max_seq_length") if sbert.is_file() else None
    length = min(length or tokenizer_max_length(path), bert_config.max_position)  # sentence-transformers' cut
    config = CrossEncoderConfig(model=str(path.resolve()), pooler=not modular,
                                **{"pair_maxlen": length, **overrides})
    model = CrossEncoderModel(config, bert_config=bert_config, bert_params=params["bert"], head_params=params["head"],
                         pooler_params=params.get("pooler"), tokenizer=folder_tokenizer(path))
    st_file = path / "config_sentence_transformers.json"
    version = read_json(st_file).get("__version__", {}).get("sentence_transformers") if st_file.is_file() else None
    kind = MODULAR if modular else CLASSIFIER
    return model, params, f"{kind}, sentence-transformers {version}" if version else kind


def _read_classifier(path: Path):
    """(BertConfig, {"bert", "head", "pooler"}) of a BertForSequenceClassification folder."""
    hf = read_json(path / "config.json")
    labels = hf.get("num_labels", len(hf.get("id2label") or {0: ""}))
    if labels != 1:
        raise CheckpointError(f"{path / 'config.json'}: {labels} labels; a reranker has num_labels 1")
    weights = read_weights(path)
    bert_config, bert = bert_from_weights(path, weights)
    try:
        pooler = {"kernel": weights["bert.pooler.dense.weight"].T, "bias": weights["bert.pooler.dense.bias"]}
        head = {"dense": {"kernel": weights["classifier.weight"].T, "bias": weights["classifier.bias"]}}
    except KeyError as e:
        raise CheckpointError(f"{path}: the weights lack {e.args[0]} ({CLASSIFIER})") from e
    return bert_config, {"bert": bert, "head": to_f32(head), "pooler": to_f32(pooler)}


def _read_modular(path: Path):
    """(BertConfig, {"bert", "head"}) of a modular CrossEncoder: Transformer at the root,
    Pooling("cls"), a Dense score head; anything else is refused by name."""
    modules = read_json(path / "modules.json")
    classes = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if classes != ["Transformer", "Pooling", "Dense"] or modules[0].get("path", "") != "":
        raise CheckpointError(f"{path / 'modules.json'}: CrossEncoder modules {classes} are not jaxir's "
                              "cross-encoder (Transformer at the root, Pooling cls, Dense)")
    sbert = path / "sentence_bert_config.json"
    task = (read_json(sbert) if sbert.is_file() else {}).get("transformer_task", "feature-extraction")
    pool_file = path / modules[1]["path"] / "config.json"
    mode = read_json(pool_file).get("pooling_mode")
    if task != "feature-extraction" or mode not in ("cls", ["cls"]):
        raise CheckpointError(f"{pool_file}: transformer_task {task!r}, pooling {mode!r}: jaxir's "
                              "cross-encoder scores the encoder's [CLS] (feature-extraction, cls)")
    bert_config, bert = bert_from_weights(path, read_weights(path))
    dense_dir = path / modules[2]["path"]
    cfg, dense = read_json(dense_dir / "config.json"), read_weights(dense_dir)
    source = cfg.get("module_input_name", "sentence_embedding")  # Dense's defaults where the config is silent
    found = {"out_features": cfg.get("out_features"), "bias": cfg.get("bias", True),
             "activation_function": cfg.get("activation_function", "torch.nn.modules.activation.Tanh"),
             "module_input_name": source, "module_output_name": cfg.get("module_output_name", source)}
    shape = np.shape(dense.get("linear.weight"))
    if found != SCORE_DENSE or cfg.get("use_residual") or shape != (1, bert_config.hidden_size) \
            or "linear.bias" not in dense:
        raise CheckpointError(f"{dense_dir / 'config.json'}: a Dense {found}, weight {shape} is not a "
                              f"score head (linear, bias, {bert_config.hidden_size} -> 1, 'scores')")
    head = {"dense": {"kernel": dense["linear.weight"].T, "bias": dense["linear.bias"]}}
    return bert_config, {"bert": bert, "head": to_f32(head)}


def export_folder(model, params, fmt: str, out, files: dict, *, force: bool = False) -> Path:
    del files
    length = model.config.pair_maxlen
    with new_folder(out, fmt, force=force) as tmp:
        kind = (_write_classifier if model.config.pooler else _write_modular)(tmp, model.bert_config, params, length)
        save_tokenizer(model.tokenizer, tmp, length)
        write_json(tmp / "config_sentence_transformers.json", {
            "model_type": "CrossEncoder", "activation_fn": "torch.nn.modules.activation.Sigmoid",
            "prompts": {}, "default_prompt_name": None})
    print(f"export {out}: {fmt} layout ({kind})", file=sys.stderr, flush=True)
    return Path(out)


def _write_classifier(tmp: Path, bc, params, length: int) -> str:
    weights = export_bert_weights(params["bert"], bc.num_layers, "bert.")
    weights.update({"bert.pooler.dense.weight": np.asarray(params["pooler"]["kernel"]).T,
                    "bert.pooler.dense.bias": params["pooler"]["bias"],
                    "classifier.weight": np.asarray(params["head"]["dense"]["kernel"]).T,
                    "classifier.bias": params["head"]["dense"]["bias"]})
    write_json(tmp / "config.json", hf_config_dict(bc, [CLASSIFIER], id2label={"0": "LABEL_0"},
                                                   label2id={"LABEL_0": 0}))
    write_weights(tmp / "model.safetensors", {k: np.asarray(v, np.float32) for k, v in weights.items()})
    write_json(tmp / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER}])
    write_json(tmp / "sentence_bert_config.json", {
        "transformer_task": "sequence-classification", "max_seq_length": length,
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
        "module_output_name": "scores"})
    return f"{CLASSIFIER}, num_labels 1"


def _write_modular(tmp: Path, bc, params, length: int) -> str:
    h = bc.hidden_size
    write_json(tmp / "config.json", hf_config_dict(bc, ["BertModel"]))
    write_weights(tmp / "model.safetensors", export_bert_weights(params["bert"], bc.num_layers))
    write_json(tmp / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_POOLING},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": ST_DENSE}])
    write_json(tmp / "sentence_bert_config.json", {
        "transformer_task": "feature-extraction", "max_seq_length": length,
        "model_kwargs": {"add_pooling_layer": False},  # a BertModel without pooler, as trained
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings"})
    write_json(tmp / "1_Pooling" / "config.json", {"embedding_dimension": h, "pooling_mode": "cls",
                                                   "include_prompt": True})
    write_json(tmp / "2_Dense" / "config.json", {"in_features": h, **SCORE_DENSE})
    head = params["head"]["dense"]
    write_weights(tmp / "2_Dense" / "model.safetensors",
                  {"linear.weight": np.asarray(head["kernel"], np.float32).T,
                   "linear.bias": np.asarray(head["bias"], np.float32)})
    return f"{MODULAR}: the head reads [CLS] without BERT's pooler, as trained; sentence-transformers >= 6 loads it"
