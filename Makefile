# Two commands do all the set-up:  `make run` (the daemon on SQLite with config.example.toml)
# and `make test` (lint, import contracts, types, then the test suite). Both create .venv if missing.

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= config.example.toml
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-stories bench-notify bench-relevance bench-farm clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "watcher needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	@touch $@

run: $(BIN)/.installed
	$(BIN)/watcher --config $(CONFIG) run

lint: $(BIN)/.installed
	$(BIN)/ruff check watcher tests bench
	$(BIN)/ruff format --check watcher tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench

bench-stories: $(BIN)/.installed
	$(BIN)/python -m bench.stories

bench-notify: $(BIN)/.installed
	$(BIN)/python -m bench.notify

# The whole poll pipeline against a loopback farm of feeds, beside a naive pipeline (issue 11, first step).
bench-farm: $(BIN)/.installed
	$(BIN)/python -m bench.farm --feeds 100 --items 50

# Recall, precision and attribution of the shipped rules on the relevance corpus (bench/relevance);
# exits 1 when the held-out part is below bench/relevance/floor.json.
bench-relevance: $(BIN)/.installed
	$(BIN)/python -m bench.relevance --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
