# Two commands do all the set-up:  `make run` (the daemon on SQLite with config.example.toml)
# and `make test` (lint, import contracts, types, then the test suite). Both create .venv if missing.

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= config.example.toml
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-full bench-latency bench-scorer bench-stories faults soak fuzz bench-notify bench-relevance bench-farm clean

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

# The self-contained suites on both cores; the ones that run daemons, replicas and kills (their
# timing is part of what they check) one at a time after them.
PARALLEL_TESTS := tests/unit tests/integration tests/hostile tests/security
SERIAL_TESTS := tests/e2e tests/faults

test: lint
	$(BIN)/pytest -n 2 $(PARALLEL_TESTS)
	$(BIN)/pytest $(SERIAL_TESTS)

# The fault suite alone (crashes, restarts, database and receiver outages, disk full; both databases).
faults: $(BIN)/.installed
	$(BIN)/pytest tests/faults -q

# The 50-kill crash soak on each database (about 15 minutes each): prints kills, alerts, repeats
# and recovery times, and fails on any loss, double record or more than one repeat per kill.
soak: $(BIN)/.installed
	$(BIN)/python -m tests.faults.soak --kills 50 --db sqlite
	$(BIN)/python -m tests.faults.soak --kills 50 --db postgresql

# The property tests of the parsers, loaders and normaliser with many more examples (a fuzzing run).
FUZZ_EXAMPLES ?= 20000
fuzz: $(BIN)/.installed
	WATCHER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest --timeout=0 -q tests/security/test_properties.py tests/hostile/test_properties.py

# Matching, parsing and a steady poll; then the feed farm beside rss2email and the naive pipeline
# (100 feeds), and 1,000 feeds beside rss2email: about 10 minutes on 2 cores.
bench: $(BIN)/.installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.farm --feeds 100 --items 50 --json bench/farm-100.json
	$(BIN)/python -m bench.farm --feeds 1000 --items 50 --only watcher,rss2email --json bench/farm-1000.json

# The long runs: 1,000 feeds with the naive pipeline too, 10,000 feeds (watcher and rss2email), the
# end-to-end latency at 1,000 feeds, and an hour's steady state (the soak) at 10,000 feeds.
bench-full: $(BIN)/.installed bench-latency
	$(BIN)/python -m bench.farm --feeds 1000 --items 50 --json bench/farm-1000.json
	$(BIN)/python -m bench.farm --feeds 10000 --items 50 --only watcher,rss2email --json bench/farm-10000.json
	$(BIN)/python -m bench.latency --feeds 10000 --interval 300 --minutes 60 --json bench/steady-10000.json

# The real daemon on 1,000 feeds at a 60 s interval, new items mailed to a loopback SMTP sink:
# latency p50/p99 from an item's appearing to its message, CPU share and RSS (about 10 minutes).
bench-latency: $(BIN)/.installed
	$(BIN)/python -m bench.latency --feeds 1000 --interval 60 --minutes 5 --json bench/latency-1000.json

# The learned second stage tried on the relevance corpus (character n-grams, logistic regression,
# trained and cross-validated on the tuning part): its figures beside the rules' (about 10 minutes).
bench-scorer: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[scorer]'
	$(BIN)/python -m bench.relevance.scorer

bench-stories: $(BIN)/.installed
	$(BIN)/python -m bench.stories

bench-notify: $(BIN)/.installed
	$(BIN)/python -m bench.notify

# The whole poll pipeline against a loopback farm of feeds, beside rss2email and a naive pipeline.
bench-farm: $(BIN)/.installed
	$(BIN)/python -m bench.farm --feeds 100 --items 50 --json bench/farm-100.json

# Recall, precision and attribution of the shipped rules on the relevance corpus (bench/relevance);
# exits 1 when the held-out part is below bench/relevance/floor.json.
bench-relevance: $(BIN)/.installed
	$(BIN)/python -m bench.relevance --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
