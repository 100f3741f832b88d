"""jaxir: neural information retrieval in JAX.

The public API (each name imported on first use, so `import jaxir` loads neither JAX nor a
model, and `jaxir.index` never imports JAX, so search runs on machines without accelerators):

    load(method, checkpoint=None, **options)   one object for every registered method:
                                               encode / index / search / rerank (`jaxir.api`)
    method_names()                             the registered method names (`jaxir.methods` is the package)
    Hit, Retriever, format_hits                search results, the object `load` returns, a table of hits
    load_beir(path_or_name, split)             a BEIR dataset (corpus, queries, qrels)
    evaluate(run, qrels, metrics)              nDCG / MRR / Recall / MAP of a run

Everything else lives in the submodules (models, ops, methods, training, index, retrievers).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load": "jaxir.api", "method_names": "jaxir.api", "Hit": "jaxir.api", "Retriever": "jaxir.api",
    "format_hits": "jaxir.api", "load_beir": "jaxir.eval.beir", "evaluate": "jaxir.eval.metrics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # imported once
        return value
    raise AttributeError(f"module 'jaxir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
