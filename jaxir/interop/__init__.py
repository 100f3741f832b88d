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

from jaxir.interop.detect import FOREIGN_FORMATS, METHOD_OF, detect_format  # noqa: F401


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


def _module(fmt: str):
    if fmt in ("colbert-ai", "pylate"):
        from jaxir.interop import colbert_layouts as module
    elif fmt in ("hf-mlm", "sentence-transformers-sparse"):
        from jaxir.interop import sparse_layouts as module
    elif fmt == "sentence-transformers":
        from jaxir.interop import cross_encoder_layouts as module
    else:
        raise ValueError(f"unknown layout {fmt!r}; known: {', '.join(FOREIGN_FORMATS)}")
    return module
