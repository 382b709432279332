# `make run`: set up and start Tidings on the embedded default (SQLite in ./.tidings).
# `make test`: set up, lint, type-check, and run the suite on SQLite, then on Postgres + Redis.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/15
# pytest-xdist processes: most tests wait on servers, queues and the browser, so four keep two
# cores busy (two left a quarter to two thirds of them idle).
PYTEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=10
# The tests start `tidings serve`, `tidings worker` and the CLI a few hundred times. Where
# PYTHONDONTWRITEBYTECODE is set (as in CI), each of them would compile every module of src/
# again, about a quarter of its start-up: compile them once before the run.
BYTECODE := $(BIN)/python -m compileall -q src

.PHONY: run test lint browser wrk test-sqlite test-postgres bench clean \
	bench-ingest bench-batch bench-send bench-pipeline

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
	$(BYTECODE) && env $$extra $(PYTEST)

# The tests that never meet the database or job storage have run on SQLite already: this run
# leaves them out (--backend-dependent-only, tests/conftest.py).
test-postgres: $(VENV)/.test-installed $(NODE_TEST_DIR)/node_modules/.installed browser
	@if $(BIN)/python tests/reachable.py 127.0.0.1 5432 && $(BIN)/python tests/reachable.py 127.0.0.1 6379; then \
		echo "== pytest on PostgreSQL, jobs on Redis"; \
		$(BYTECODE) && TIDINGS_TEST_DATABASE_URL=$(PG_URL) TIDINGS_TEST_JOB_STORAGE=$(REDIS_URL) \
			$(PYTEST) --backend-dependent-only; \
	elif [ -n "$$CI" ]; then \
		echo "CI needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379"; exit 1; \
	else \
		echo "== PostgreSQL or Redis is not running here: the Postgres run is left to CI"; \
	fi

test: lint test-sqlite test-postgres

# Benchmarks (docs/benchmarks.md): ingest, batch, send and the pipeline, each against a floor
# measured in the same run. `make bench` runs the four and fails if a budget is missed;
# `make bench-<name>` runs one. QUICK=1 shortens every phase (a check, not a measurement);
# BENCH_ARGS="--commit REV" measures src/ of another commit.
BENCHMARKS := ingest batch send pipeline
BENCH_RESULTS := bench/results/make
BENCH_ARGS ?=
QUICK ?=
BENCH_RUN = $(BIN)/python bench/$(1)/run.py $(if $(QUICK),--quick) $(BENCH_ARGS)

# wrk, the ingest benchmark's load generator, from Debian's packages when missing.
wrk:
	@if ! command -v wrk >/dev/null; then \
		echo "== installing Debian's wrk for bench/ingest"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq wrk >/dev/null; \
	fi

# Each benchmark runs even when an earlier one missed its budget (Ctrl-C stops them all);
# bench/report.py then prints the four results and sets the exit status.
bench: $(VENV)/.test-installed wrk
	@rm -rf $(BENCH_RESULTS)
	@for name in $(BENCHMARKS); do \
		echo "== bench/$$name"; \
		$(call BENCH_RUN,$$name) --output $(BENCH_RESULTS)/$$name.json; \
		[ $$? -ne 130 ] || exit 130; \
	done
	$(BIN)/python bench/report.py $(BENCH_RESULTS)

$(addprefix bench-,$(BENCHMARKS)): bench-%: $(VENV)/.test-installed
	$(call BENCH_RUN,$*)

bench-ingest: wrk

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
