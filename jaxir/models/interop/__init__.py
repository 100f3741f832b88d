"""Checkpoints of the PyTorch ecosystem: detect a folder's layout, import it into a jaxir model,
export a jaxir model to it.

    layout                 written by                                    jaxir method
    colbert-ai             colbert-ai (HF_ColBERT + artifact.metadata)   colbert
    pylate                 PyLate (sentence-transformers modules + Dense) colbert
    hf-mlm                 BertForMaskedLM + idf.json (inference-free)   sparse
    sentence-transformers-sparse  a SparseEncoder Router: IDF query route    sparse (import only)
                           (SparseStaticEmbedding), MLM + SpladePooling document route
    sentence-transformers  a CrossEncoder: BertForSequenceClassification,  cross-encoder
                           num_labels 1 (`pooler` on), or the modules Transformer,
                           Pooling cls, Dense (a head on [CLS] itself, the default)

Importing needs no torch (weights are read with safetensors' NumPy backend; a folder with only
pytorch_model.bin is read with torch). The encoder is the Flax BERT, so any BERT size loads
(hidden, layers, heads, vocabulary from config.json); other architectures are refused by name.
"""
from __future__ import annotations

from jaxir.models.interop.detect import FOREIGN_FORMATS, METHOD_OF, detect_format  # noqa: F401


def load_foreign(path, *, method: str, overrides: dict):
    """(model, params) of a folder in one of FOREIGN_FORMATS for `method`, config fields
    replaced by `overrides` (None values are ignored). Logs the layout on stderr."""
    import sys

    fmt = detect_format(path, method=method)
    module = _module(fmt)
    model, params, where = module.import_folder(path, fmt, {k: v for k, v in overrides.items() if v is not None})
    print(f"checkpoint {path}: {fmt} layout ({where})", file=sys.stderr, flush=True)
    return model, params


def export_model(model, params, *, fmt: str, out, files: dict | None = None, force: bool = False):
    """Write a jaxir model in a foreign layout at `out` (atomically); returns the path. Something
    already at `out` is replaced only if it is a folder jaxir exported and `force` is given."""
    return _module(fmt).export_folder(model, params, fmt, out, files or {}, force=force)


EXPORTS = {"colbert": ("colbert-ai", "pylate"), "sparse": ("hf-mlm",), "cross-encoder": ("sentence-transformers",)}


def export_checkpoint(checkpoint, *, fmt: str, out, force: bool = False):
    """`jaxir export-model`: load any checkpoint jaxir reads and write it in layout `fmt` at
    `out`, which must not exist or (with `force`) be a folder jaxir exported."""
    from pathlib import Path

    from jaxir.errors import CheckpointError
    from jaxir.models.interop.folders import check_replaceable
    from jaxir.models.saved_model import read_model_info

    check_replaceable(out, force=force)  # before the model is loaded; again under the lock
    path = Path(checkpoint)
    if (path / "reranker").is_dir():  # a cross-encoder training folder
        path = path / "reranker"
    found = detect_format(path)
    method = read_model_info(path)["method"] if found == "jaxir" else METHOD_OF[found]
    if fmt not in EXPORTS.get(method, ()):
        allowed = ", ".join(EXPORTS.get(method, ())) or "none"
        raise CheckpointError(f"{checkpoint} holds a {method} model: it exports to {allowed}, not {fmt}")
    files = {}
    if method == "cross-encoder":
        from jaxir.retrievers.cross_encoder import CrossEncoderReranker

        reranker = CrossEncoderReranker.load(path)
        model, params = reranker.model, reranker.params
    else:
        import importlib

        checkpoints = importlib.import_module(f"jaxir.retrievers.{method}").CHECKPOINTS
        model, params = checkpoints.load_model(str(path), {})
        if (path / "idf.json").is_file():
            files["idf.json"] = path / "idf.json"
    try:
        return export_model(model, params, fmt=fmt, out=out, files=files, force=force)
    except CheckpointError as e:
        raise CheckpointError(f"{checkpoint}: {e}") from e


def _module(fmt: str):
    if fmt in ("colbert-ai", "pylate"):
        from jaxir.models.interop import colbert_layouts as module
    elif fmt in ("hf-mlm", "sentence-transformers-sparse"):
        from jaxir.models.interop import sparse_layouts as module
    elif fmt == "sentence-transformers":
        from jaxir.models.interop import cross_encoder_layouts as module
    else:
        raise ValueError(f"unknown layout {fmt!r}; known: {', '.join(FOREIGN_FORMATS)}")
    return module
