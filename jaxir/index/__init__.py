"""NumPy-only index runtime: build, save, load and search. Never imports jax."""
