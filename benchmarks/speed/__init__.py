"""Speed and memory: jaxir against its peers (bm25s, PyTorch, PyLate, fast-plaid) and against itself."""
