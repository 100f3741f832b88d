"""Hugging Face BERT folder (config.json + model.safetensors) -> Flax params pytree.

No torch at run time: weights are read with safetensors' NumPy backend.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError
from jaxir.text.model_dir import default_model_dir, resolve_model_dir  # noqa: F401 (re-exported)

def read_config(model_dir: str | Path) -> dict:
    return json.loads((Path(model_dir) / "config.json").read_text())


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both bare `BertModel` names and `bert.`-prefixed ones (BertForMaskedLM etc.)."""
    if any(k.startswith("bert.") for k in weights):
        return {k[len("bert."):]: v for k, v in weights.items() if k.startswith("bert.")}
    return weights


def _layer_params(w: dict[str, np.ndarray], i: int) -> dict:
    p = f"encoder.layer.{i}."
    get = lambda name: w[p + name]  # noqa: E731
    # Torch Linear stores [out, in]; flax Dense wants kernel [in, out]. Q, K, V are fused.
    qkv_kernel = np.concatenate([get(f"attention.self.{n}.weight").T for n in ("query", "key", "value")], 1)
    qkv_bias = np.concatenate([get(f"attention.self.{n}.bias") for n in ("query", "key", "value")])
    ln = lambda name: {"scale": get(f"{name}.weight"), "bias": get(f"{name}.bias")}  # noqa: E731
    return {
        "attention": {
            "qkv": {"kernel": qkv_kernel, "bias": qkv_bias},
            "out": {"kernel": get("attention.output.dense.weight").T, "bias": get("attention.output.dense.bias")},
        },
        "attention_norm": ln("attention.output.LayerNorm"),
        "intermediate": {"kernel": get("intermediate.dense.weight").T, "bias": get("intermediate.dense.bias")},
        "output": {"kernel": get("output.dense.weight").T, "bias": get("output.dense.bias")},
        "output_norm": ln("output.LayerNorm"),
    }


def convert_bert_weights(weights: dict[str, np.ndarray], num_layers: int) -> dict:
    """HF BERT state dict (NumPy arrays) -> jaxir BertEncoder params pytree."""
    w = _strip_prefix(weights)
    try:
        emb = {
            "word": {"embedding": w["embeddings.word_embeddings.weight"]},
            "position": {"embedding": w["embeddings.position_embeddings.weight"]},
            "token_type": {"embedding": w["embeddings.token_type_embeddings.weight"]},
            "norm": {"scale": w["embeddings.LayerNorm.weight"], "bias": w["embeddings.LayerNorm.bias"]},
        }
        params = {"embeddings": emb}
        for i in range(num_layers):
            params[f"layer_{i}"] = _layer_params(w, i)
    except KeyError as e:
        raise CheckpointError(f"weights lack the BERT tensor {e.args[0]!r}") from e
    return _to_f32(params)


def _to_f32(tree):
    if isinstance(tree, dict):
        return {k: _to_f32(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree, dtype=np.float32)


def load_bert(model: str | Path | None = None, **config_overrides):
    """Load (BertConfig, params) from a local HF BERT folder (default: embedded MiniLM)."""
    from safetensors.numpy import load_file

    from jaxir.models.bert import BertConfig

    path = resolve_model_dir(model)
    config = BertConfig.from_hf(read_config(path), **config_overrides)
    st = path / "model.safetensors"
    if not st.is_file():
        raise CheckpointError(f"{path} has no model.safetensors")
    return config, convert_bert_weights(load_file(str(st)), config.num_layers)


def params_fingerprint(params) -> str:
    """sha256 over every leaf's path, dtype, shape and bytes: identifies a model in index manifests."""
    import jax

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]
