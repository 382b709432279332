# `make run`: set up and start Tidings on the embedded default (SQLite in ./.tidings).
# `make test`: set up, lint, type-check, and run the suite on SQLite, then on Postgres + Redis.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/15
# pytest-xdist processes: most tests wait on servers and queues, so two share two cores well.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=10

.PHONY: run test lint browser test-sqlite test-postgres bench bench-pipeline clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/tidings serve --data-dir .tidings

LINTED := src tests $(wildcard bench)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict src

# Studio's browser tests drive Debian's chromium (never a browser download).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "== installing Debian's chromium for the Studio browser tests"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	fi

# Segment's Node library for tests/tracking/test_sdk.py, from npm into a gitignored dir
# (npm is installed from Debian's packages when missing).
NODE_TEST_DIR := tests/tracking/node

$(NODE_TEST_DIR)/node_modules/.installed: $(NODE_TEST_DIR)/package.json
	@if ! command -v npm >/dev/null; then \
		echo "== installing Debian's nodejs and npm for the Tracking API's Node SDK test"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	npm install --prefix $(NODE_TEST_DIR) --silent
	touch $@

# Postgres and Redis join the SQLite run's job-storage tests when they answer.
test-sqlite: $(VENV)/.test-installed $(NODE_TEST_DIR)/node_modules/.installed browser
	@extra=""; \
	if $(BIN)/python tests/reachable.py 127.0.0.1 6379; then extra="$$extra TIDINGS_TEST_REDIS_URL=$(REDIS_URL)"; fi; \
	if $(BIN)/python tests/reachable.py 127.0.0.1 5432; then extra="$$extra TIDINGS_TEST_POSTGRES_URL=$(PG_URL)"; fi; \
	echo "== pytest on SQLite"; \
	env $$extra $(PYTEST)

test-postgres: $(VENV)/.test-installed $(NODE_TEST_DIR)/node_modules/.installed browser
	@if $(BIN)/python tests/reachable.py 127.0.0.1 5432 && $(BIN)/python tests/reachable.py 127.0.0.1 6379; then \
		echo "== pytest on PostgreSQL, jobs on Redis"; \
		TIDINGS_TEST_DATABASE_URL=$(PG_URL) TIDINGS_TEST_JOB_STORAGE=$(REDIS_URL) $(PYTEST); \
	elif [ -n "$$CI" ]; then \
		echo "CI needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379"; exit 1; \
	else \
		echo "== PostgreSQL or Redis is not running here: the Postgres run is left to CI"; \
	fi

test: lint test-sqlite test-postgres

# Benchmarks (docs/benchmarks.md): ingest, then the Segment event -> automation -> SMTP pipeline.
bench: $(VENV)/.test-installed
	$(BIN)/python bench/ingest/run.py
	$(BIN)/python bench/pipeline/run.py

bench-pipeline: $(VENV)/.test-installed
	$(BIN)/python bench/pipeline/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
