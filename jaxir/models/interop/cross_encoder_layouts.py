"""Cross-encoders of sentence-transformers (BertForSequenceClassification, num_labels 1) <->
jaxir's CrossEncoder with `pooler` on: s = classifier(tanh(pooler([CLS]))).

sentence-transformers 6 saves the model as one Transformer module at the folder's root
(modules.json, sentence_bert_config.json, config_sentence_transformers.json with its
activation_fn, Sigmoid by default); older versions and plain transformers folders have only
config.json + weights. Both load. jaxir scores are the logits (before any activation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError
from jaxir.models.hf import bert_from_weights, export_bert_weights, hf_config_dict, read_weights, to_f32, write_weights
from jaxir.models.interop.detect import folder_tokenizer, read_json, tokenizer_max_length
from jaxir.models.interop.folders import new_folder, save_tokenizer, write_json

ST_TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"


def import_folder(path, fmt: str, overrides: dict):
    from jaxir.methods.cross_encoder import CrossEncoder, CrossEncoderConfig

    del fmt
    path = Path(path)
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
        raise CheckpointError(f"{path}: the weights lack {e.args[0]} (BertForSequenceClassification)") from e
    sbert = path / "sentence_bert_config.json"
    length = read_json(sbert).get("max_seq_length") if sbert.is_file() else None
    length = min(length or tokenizer_max_length(path), bert_config.max_position)  # sentence-transformers' cut
    config = CrossEncoderConfig(model=str(path.resolve()), pooler=True, **{"pair_maxlen": length, **overrides})
    model = CrossEncoder(config, bert_config=bert_config, bert_params=bert, head_params=to_f32(head),
                         pooler_params=to_f32(pooler), tokenizer=folder_tokenizer(path))
    st_file = path / "config_sentence_transformers.json"
    version = read_json(st_file).get("__version__", {}).get("sentence_transformers") if st_file.is_file() else None
    where = f"BertForSequenceClassification, sentence-transformers {version}" if version else \
        "BertForSequenceClassification"
    params = {"bert": bert, "head": to_f32(head), "pooler": to_f32(pooler)}  # what model.init assembles
    return model, params, where


def export_folder(model, params, fmt: str, out, files: dict, *, force: bool = False) -> Path:
    del files
    bc = model.bert_config
    if not model.config.pooler:
        raise CheckpointError("this cross-encoder scores [CLS] without BERT's pooler, which "
                              "BertForSequenceClassification always applies; train it with "
                              "--model.pooler true to export it")
    weights = export_bert_weights(params["bert"], bc.num_layers, "bert.")
    weights.update({"bert.pooler.dense.weight": np.asarray(params["pooler"]["kernel"]).T,
                    "bert.pooler.dense.bias": params["pooler"]["bias"],
                    "classifier.weight": np.asarray(params["head"]["dense"]["kernel"]).T,
                    "classifier.bias": params["head"]["dense"]["bias"]})
    with new_folder(out, fmt, force=force) as tmp:
        write_json(tmp / "config.json", hf_config_dict(bc, ["BertForSequenceClassification"],
                                                       id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0}))
        write_weights(tmp / "model.safetensors", {k: np.asarray(v, np.float32) for k, v in weights.items()})
        save_tokenizer(model.tokenizer, tmp, model.config.pair_maxlen)
        write_json(tmp / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER}])
        write_json(tmp / "sentence_bert_config.json", {
            "transformer_task": "sequence-classification", "max_seq_length": model.config.pair_maxlen,
            "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
            "module_output_name": "scores"})
        write_json(tmp / "config_sentence_transformers.json", {
            "model_type": "CrossEncoder", "activation_fn": "torch.nn.modules.activation.Sigmoid",
            "prompts": {}, "default_prompt_name": None})
    return Path(out)
