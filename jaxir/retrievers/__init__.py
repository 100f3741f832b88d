"""The retrievers: one per method (build, open, search, rerank) behind `registry.py`; what runs them on a dataset is `jaxir.pipeline`."""
