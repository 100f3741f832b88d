"""What runs retrievers on a dataset: evaluation (`evaluate`), first stage + reranking (`rerank`),
the search loop they share (`search`), and the index cache keyed by what an index was built from
(`built_from`, `append`). Above `jaxir.retrievers`, which only retrieve."""
