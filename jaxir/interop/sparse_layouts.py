"""Inference-free learned sparse checkpoints as their authors publish them <-> jaxir's SparseModel.

    hf-mlm: a BertForMaskedLM folder (config.json, model.safetensors with `bert.*` and
            `cls.predictions.*`, the decoder tied to the word embeddings) + the tokenizer +
            idf.json ({token: weight}, the query side), e.g. OpenSearch's
            opensearch-neural-sparse-encoding-doc-v2-distill.

The document weights are log(1 + ReLU(max over tokens of the MLM logits)), what
sentence-transformers' MLMTransformer + SpladePooling("max") compute; jaxir also zeroes special
and [unused*] tokens (no query contains them), as the authors' reference code does. A SPLADE
folder (no idf.json: queries are encoded too) needs the siamese sparse method, not in jaxir yet.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError
from jaxir.models.hf import (bert_from_weights, export_bert_weights, hf_config_dict, legacy_norm_name,
                             read_weights, to_f32, write_weights)
from jaxir.interop.detect import folder_tokenizer, read_json, tokenizer_max_length
from jaxir.interop.folders import new_folder, save_tokenizer

IDF_FILE, HEAD = "idf.json", "cls.predictions."


def import_folder(path, fmt: str, overrides: dict):
    from jaxir.text.idf import load_idf, tokenizer_vocab

    path = Path(path)
    if fmt == "sentence-transformers-sparse":
        mlm, idf_of = _router(path)
        where = "sentence-transformers SparseEncoder: IDF query route, MLM + SPLADE max document route"
    else:
        if not (path / IDF_FILE).is_file():
            raise CheckpointError(f"{path / IDF_FILE} is missing: an inference-free document encoder needs "
                                  "its query idf.json (a SPLADE model, which encodes queries, is not a "
                                  "jaxir method yet)")
        mlm, where = path, "BertForMaskedLM + idf.json"
        idf_of = lambda tokenizer: load_idf(path / IDF_FILE, tokenizer_vocab(tokenizer))  # noqa: E731
    model, params = _import_mlm(mlm, idf_of, overrides)
    return model, params, where


def _router(path: Path):
    """(document MLM folder, tokenizer -> idf [V]) of a SparseEncoder Router; anything but the
    inference-free structure (static IDF queries, MLM + max/ReLU SPLADE pooling) is refused."""
    from jaxir.models.hf import read_weights

    file = path / "router_config.json"
    router = read_json(file)
    structure, types = router.get("structure", {}), router.get("types", {})
    query, document = structure.get("query", []), structure.get("document", [])
    kinds = lambda names: [types.get(n, "?").rsplit(".", 1)[-1] for n in names]  # noqa: E731
    if kinds(query) != ["SparseStaticEmbedding"] or kinds(document) not in (
            ["MLMTransformer", "SpladePooling"], ["Transformer", "SpladePooling"]):
        raise CheckpointError(f"{file}: routes query {kinds(query)}, document {kinds(document)} are not "
                              "the inference-free structure jaxir imports (SparseStaticEmbedding; "
                              "MLMTransformer + SpladePooling)")
    pooling = read_json(path / document[1] / "config.json")
    if pooling.get("pooling_strategy", "max") != "max" or pooling.get("activation_function", "relu") != "relu" \
            or pooling.get("embedding_dimension"):
        raise CheckpointError(f"{path / document[1] / 'config.json'}: SPLADE pooling {pooling} is not "
                              "supported (jaxir: max over tokens of log(1 + ReLU(logits)))")
    weights = read_weights(path / query[0])
    if "weight" not in weights:
        raise CheckpointError(f"{path / query[0]}: the SparseStaticEmbedding weights have no 'weight'")
    table = np.asarray(weights["weight"], np.float32)

    def idf_of(tokenizer):
        if table.shape != (len(tokenizer),):
            raise CheckpointError(f"{path / query[0]}: {table.shape[0]} query weights for a vocabulary "
                                  f"of {len(tokenizer)} tokens")
        return table

    return path / document[0], idf_of


def _import_mlm(path: Path, idf_of, overrides: dict):
    from jaxir.methods.sparse import SparseModel
    from jaxir.methods.sparse_config import SparseConfig

    config_file = path / "config.json"
    act = read_json(config_file).get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{config_file}: hidden_act {act!r} is not supported (the MLM head is exact gelu)")
    weights = read_weights(path)
    bert_config, bert = bert_from_weights(path, weights)
    tokenizer = folder_tokenizer(path)
    idf = idf_of(tokenizer)  # DataError / CheckpointError naming the file
    if idf.shape != (bert_config.vocab_size,):
        raise CheckpointError(f"{path / IDF_FILE}: the tokenizer has {idf.shape[0]} tokens, "
                              f"config.json vocab_size {bert_config.vocab_size}")
    head = _head(weights, bert, path)
    # The authors' code and sentence-transformers encode one window cut at the tokenizer's length
    lengths = {"doc_maxlen": min(tokenizer_max_length(path), bert_config.max_position), "doc_windows": 1}
    config = SparseConfig(model=str(path.resolve()), **{**lengths, **overrides})
    model = SparseModel(config, idf=idf, bert_config=bert_config, bert_params=bert, tokenizer=tokenizer)
    model.imported_idf = idf  # the checkpoint's own query weights (the retriever searches with them)
    return model, {"bert": bert, "head": head}


def _head(weights: dict, bert: dict, path: Path) -> dict:
    w = {legacy_norm_name(k)[len(HEAD):]: v for k, v in weights.items() if k.startswith(HEAD)}
    try:
        bias = w["bias"] if "bias" in w else w["decoder.bias"]
        head = {"transform": {"kernel": w["transform.dense.weight"].T, "bias": w["transform.dense.bias"]},
                "norm": {"scale": w["transform.LayerNorm.weight"], "bias": w["transform.LayerNorm.bias"]},
                "bias": bias}
    except KeyError as e:
        raise CheckpointError(f"{path}: the weights lack the MLM head tensor {HEAD}{e.args[0]}") from e
    decoder = w.get("decoder.weight")
    if decoder is not None and not np.array_equal(decoder, bert["embeddings"]["word"]["embedding"]):
        raise CheckpointError(f"{path}: an MLM decoder untied from the word embeddings is not supported")
    return to_f32(head)


def export_folder(model, params, fmt: str, out, files: dict, *, force: bool = False) -> Path:
    cfg, bc = model.config, model.bert_config
    for bad, why in ((cfg.lexical_prior, "a BM25 lexical prior"), (cfg.double_log, "double_log"),
                     (bc.hidden_act != "gelu", f"hidden_act {bc.hidden_act!r} (the head applies it)")):
        if bad:
            raise CheckpointError(f"{why} has no place in the {fmt} layout (BertForMaskedLM + idf.json)")
    idf = files.get(IDF_FILE)
    table = getattr(model, "imported_idf", None)  # query weights that came without an idf.json
    if (idf is None or not Path(idf).is_file()) and table is None:
        raise CheckpointError(f"the checkpoint has no {IDF_FILE} to export with its document encoder")
    head = params["head"]
    weights = export_bert_weights(params["bert"], bc.num_layers, "bert.")
    weights.update({HEAD + "transform.dense.weight": np.asarray(head["transform"]["kernel"]).T,
                    HEAD + "transform.dense.bias": head["transform"]["bias"],
                    HEAD + "transform.LayerNorm.weight": head["norm"]["scale"],
                    HEAD + "transform.LayerNorm.bias": head["norm"]["bias"],
                    HEAD + "bias": head["bias"]})
    with new_folder(out, fmt, force=force) as tmp:
        from jaxir.interop.folders import write_json

        write_json(tmp / "config.json", hf_config_dict(bc, ["BertForMaskedLM"], tie_word_embeddings=True))
        write_weights(tmp / "model.safetensors", {k: np.asarray(v, np.float32) for k, v in weights.items()})
        save_tokenizer(model.tokenizer, tmp, cfg.doc_maxlen)  # what the libraries truncate at
        if idf is not None and Path(idf).is_file():
            shutil.copy(idf, tmp / IDF_FILE)
        else:
            from jaxir.text.idf import save_idf, tokenizer_vocab

            save_idf(tmp / IDF_FILE, table, tokenizer_vocab(model.tokenizer))
    if cfg.doc_windows > 1:
        import sys

        print(f"note: jaxir max-pools up to {cfg.doc_windows} windows of {cfg.doc_maxlen} tokens; the "
              f"{fmt} layout records one (longer documents are cut there)", file=sys.stderr)
    return Path(out)
