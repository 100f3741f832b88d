"""Hugging Face BERT folder (config.json + model.safetensors) -> Flax params pytree.

No torch at run time: weights are read with safetensors' NumPy backend.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from jaxir.errors import CheckpointError, utf8_text
from jaxir.models.folders import model_folder
from jaxir.text.model_dir import resolve_model_dir

def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(utf8_text(path.read_bytes(), path))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def legacy_norm_name(key: str) -> str:
    """LayerNorm `gamma`/`beta` (old BERT names, still written by some transformers versions,
    e.g. 5.3 under PyLate) -> `weight`/`bias`, as transformers maps them on load."""
    if key.endswith("LayerNorm.gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith("LayerNorm.beta"):
        return key[: -len("beta")] + "bias"
    return key


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both bare `BertModel` names and `bert.`-prefixed ones (BertForMaskedLM etc.)."""
    weights = {legacy_norm_name(k): v for k, v in weights.items()}
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
    return to_f32(params)


def check_bert_shapes(params: dict, config, where: str) -> None:
    """The converted weights must have the sizes config.json declares (else CheckpointError)."""
    h, v = config.hidden_size, config.vocab_size
    want = {"embeddings word": (params["embeddings"]["word"]["embedding"].shape, (v, h)),
            "layer 0 intermediate": (params["layer_0"]["intermediate"]["kernel"].shape,
                                     (h, config.intermediate_size)),
            "position embeddings": (params["embeddings"]["position"]["embedding"].shape,
                                    (config.max_position, h))}
    for name, (got, expected) in want.items():
        if tuple(got) != expected:
            raise CheckpointError(f"{where}: config.json says {name} {expected} "
                                  f"(hidden_size {h}, vocab_size {v}), the weights have {tuple(got)}")


def export_bert_weights(params: dict, num_layers: int, prefix: str = "") -> dict[str, np.ndarray]:
    """jaxir BertEncoder params -> HF BERT state dict (NumPy), names under `prefix` ("bert." for
    BertForMaskedLM etc.): the inverse of `convert_bert_weights`."""
    out: dict[str, np.ndarray] = {}
    emb = params["embeddings"]
    for hf_name, ours in (("word_embeddings", "word"), ("position_embeddings", "position"),
                          ("token_type_embeddings", "token_type")):
        out[f"embeddings.{hf_name}.weight"] = emb[ours]["embedding"]
    out["embeddings.LayerNorm.weight"], out["embeddings.LayerNorm.bias"] = emb["norm"]["scale"], emb["norm"]["bias"]
    for i in range(num_layers):
        layer, p = params[f"layer_{i}"], f"encoder.layer.{i}."
        kernel, bias = np.asarray(layer["attention"]["qkv"]["kernel"]), np.asarray(layer["attention"]["qkv"]["bias"])
        for j, name in enumerate(("query", "key", "value")):
            width = kernel.shape[1] // 3
            out[p + f"attention.self.{name}.weight"] = kernel[:, j * width:(j + 1) * width].T
            out[p + f"attention.self.{name}.bias"] = bias[j * width:(j + 1) * width]
        dense = {"attention.output.dense": layer["attention"]["out"], "intermediate.dense": layer["intermediate"],
                 "output.dense": layer["output"]}
        for name, d in dense.items():
            out[p + name + ".weight"], out[p + name + ".bias"] = np.asarray(d["kernel"]).T, d["bias"]
        for name, ours in (("attention.output.LayerNorm", "attention_norm"), ("output.LayerNorm", "output_norm")):
            out[p + name + ".weight"], out[p + name + ".bias"] = layer[ours]["scale"], layer[ours]["bias"]
    return {prefix + k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in out.items()}


def read_weights(folder: Path, stem: str = "model") -> dict[str, np.ndarray]:
    """A folder's `<stem>.safetensors`, else its `pytorch_model.bin` (read with torch), as NumPy."""
    st = folder / f"{stem}.safetensors"
    if st.is_file():
        from safetensors.numpy import load_file

        try:
            return load_file(str(st))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{st} is not a readable safetensors file: {e}") from e
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        import torch

        state = torch.load(binary, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items()}
    raise CheckpointError(f"{folder} has no {stem}.safetensors or pytorch_model.bin")


def write_weights(path: Path, weights: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(path), metadata={"format": "pt"})


def to_f32(tree):
    """A nested dict of arrays as contiguous float32 NumPy arrays."""
    if isinstance(tree, dict):
        return {k: to_f32(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree, dtype=np.float32)


def hf_config_dict(bert_config, architectures: list[str], **extra) -> dict:
    """A Hugging Face config.json for a jaxir BertConfig (the inverse of BertConfig.from_hf)."""
    bc = bert_config
    return {"architectures": architectures, "model_type": "bert", "vocab_size": bc.vocab_size,
            "hidden_size": bc.hidden_size, "num_hidden_layers": bc.num_layers,
            "num_attention_heads": bc.num_heads, "intermediate_size": bc.intermediate_size,
            "max_position_embeddings": bc.max_position, "type_vocab_size": bc.type_vocab_size,
            "layer_norm_eps": bc.layer_norm_eps, "hidden_act": bc.hidden_act,
            "pad_token_id": bc.pad_token_id, "hidden_dropout_prob": bc.hidden_dropout,
            "attention_probs_dropout_prob": bc.attention_dropout, "initializer_range": 0.02,
            "position_embedding_type": "absolute", **extra}


def bert_from_weights(path: Path, weights: dict[str, np.ndarray], **config_overrides):
    """(BertConfig, params) of a folder's config.json and its already-read weights, checked."""
    from jaxir.models.bert import ACTIVATIONS, BertConfig

    raw = read_config(path)
    for key, ok in (("position_embedding_type", ("absolute",)), ("hidden_act", tuple(ACTIVATIONS))):
        if raw.get(key, ok[0]) not in ok:
            raise CheckpointError(f"{path / 'config.json'}: {key} {raw[key]!r} is not supported (jaxir: {', '.join(ok)})")
    try:
        config = BertConfig.from_hf(raw, **config_overrides)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path / 'config.json'}: not a BERT config the Flax encoder supports ({e})") from e
    params = convert_bert_weights(weights, config.num_layers)
    check_bert_shapes(params, config, str(path / "config.json"))
    return config, params


def load_bert(model: str | Path | None = None, **config_overrides):
    """Load (BertConfig, params) from a local HF BERT folder (default: embedded MiniLM)."""
    path = resolve_model_dir(model)
    return bert_from_weights(path, read_weights(path), **config_overrides)


SIDECAR_SUFFIX = ".meta.json"  # jaxir's sidecar of a data file (idf.json.meta.json)


def content_digest(path: str | Path | None) -> str | None:
    """sha256 (hex) of what a file-valued option names, never of its path: the one rule by
    which index records, the index cache and recipe outputs key a file or model folder.

    A file: its bytes, then its `<file>.meta.json` sidecar's if it has one (idf.json's missing-token
    weight lives there). A folder: every file under it, hidden ones (locks, stamps) excepted:
    config, tokenizer and weights alike, each as its relative path, size and bytes, in sorted
    order; a recipe's output folder is its model folder (`jaxir.models.folders.model_folder`). None: nothing
    at `path` (the option is unset, or its loader will say what is missing)."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        for part in (path, Path(str(path) + SIDECAR_SUFFIX)):
            if part.is_file():
                digest.update(part.name.encode() + b"\0")
                _hash_bytes(digest, part)
        return digest.hexdigest()
    if not path.is_dir():
        return None
    if not (path / "config.json").is_file():  # a recipe's output folder: its model folder
        path = model_folder(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    for p in files:
        rel = p.relative_to(path).as_posix().encode()
        digest.update(len(rel).to_bytes(8, "little") + rel + p.stat().st_size.to_bytes(8, "little"))
        _hash_bytes(digest, p)
    return digest.hexdigest()


def _hash_bytes(digest, path: Path, chunk: int = 1 << 22) -> None:
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)


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
