# Scalper developer entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MYPY_PACKAGES := shared/scalper_shared cli/scalper_cli $(patsubst %/__init__.py,%,$(wildcard services/*/scalper_*/__init__.py))
PKG_FILES := requirements-dev.txt constraints.txt shared/pyproject.toml cli/pyproject.toml \
	$(wildcard services/*/pyproject.toml)

.PHONY: install demo test test-fast proofs lint bench up down clean

install: $(STAMP)

$(STAMP): $(PKG_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -r requirements-dev.txt
	touch $(STAMP)

demo: install
	$(BIN)/scalper demo

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow"

# The learning proofs (issue #13): real training runs, deselected from `make test` by pytest's addopts.
proofs: install
	$(BIN)/pytest -m proof -s

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy $(MYPY_PACKAGES)

bench: install
	$(BIN)/python -m bench

up: install
	$(BIN)/scalper stack up

down: install
	$(BIN)/scalper stack down

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
