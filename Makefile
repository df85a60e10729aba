# Two promises: `make run` and `make test` work on a fresh machine with nothing done by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
JS_DIR := tests/conformance/js

.PHONY: run test lint bench clean prepare-services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files make the installs idempotent: they rerun only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error

run: $(VENV)/.installed
	mkdir -p var
	$(BIN)/wedsync-realtime serve --host 127.0.0.1 --port 4000

# Idempotent: wal_level=logical for the Postgres Changes tests; restarts PostgreSQL only on a change.
prepare-services:
	bash scripts/prepare_postgres.sh

test: $(VENV)/.installed-test $(JS_DIR)/node_modules/.package-lock.json prepare-services
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

# The headline fan-out figure of BENCHMARKS.md: 5,000 subscribers, 10 msg/s, against the peer.
bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.fanout -n 5000 --mode one --rate 10 --duration 20 --target both --repeat 3

lint: $(VENV)/.installed-test
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) var $(JS_DIR)/node_modules
