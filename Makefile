# The README's two set-up commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STUDY_ARGS ?=

.PHONY: run test lint bench-blas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

## Install everything and run the main job.
run: $(VENV)/.installed
	$(BIN)/metapeft main $(STUDY_ARGS)

## Install everything (with the dev extra) and run the test suite.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

## OptunaHub's meta_learn_tpe reads TPE internals that Optuna 5 changed: its sampler
## comparison runs in this environment (docs/benchmarks.md).
.venv-optuna4/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-optuna4
	.venv-optuna4/bin/python -m pip install --quiet --upgrade pip
	.venv-optuna4/bin/python -m pip install --quiet -e ".[optunahub]" "optuna>=4.9,<5"
	touch $@

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check metapeft_optuna benchmarks tests
	$(BIN)/ruff format --check metapeft_optuna benchmarks tests

bench-blas: $(VENV)/.installed
	$(BIN)/python benchmarks/blas.py

clean:
	rm -rf $(VENV) .venv-optuna4 .pytest_cache .ruff_cache
