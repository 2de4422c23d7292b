# Two commands matter: `make run` (the main job on embedded DuckDB) and `make test` (every check).
# Both set themselves up from scratch: a virtual environment with the pinned lock file.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export MPLBACKEND := Agg

# Main job sizes (override: make run CUSTOMERS=50000 TRANSACTIONS=2000000)
CUSTOMERS ?= 20000
TRANSACTIONS ?= 500000
DAYS ?= 90
RAW_DIR ?= data/raw

# Test runs never touch the main job's warehouse or registry.
TEST_DIR := $(CURDIR)/.test-run
TEST_ENV := FRAUD_WAREHOUSE_DIR=$(TEST_DIR)/warehouse FRAUD_MLFLOW_DIR=$(TEST_DIR)/mlflow
TEST_VARS := {rf_min_fraud_customers: 10}

.PHONY: help setup lock data build run lint dbt-test test test-engines bench bench-serve bench-serve-workers serve clean mlflow-ui

help:
	@echo "make run    generate data, build, train, promote, score, monitor (DuckDB)"
	@echo "make test   sqlfluff, ruff, dbt build on the small fixture, parse for warehouses, pytest"
	@echo "make test-engines  only the SQL models on local Spark and fakesnow vs DuckDB (part of make test)"
	@echo "make bench  benchmark harness (see README)"
	@echo "make serve  the real-time scoring service on 127.0.0.1 (after make run)"
	@echo "make bench-serve  load test of fraud-serve on loopback (LOADTEST_ARGS)"
	@echo "make bench-serve-workers  the same: memory x1 vs Redis x1 vs Redis x2 workers"

$(STAMP):
	rm -f $(VENV)/.installed-*
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(STAMP)

# Refresh the lock file from pyproject.toml's ranges in a throwaway venv.
lock:
	rm -rf /tmp/fraud-lock-venv && $(PYTHON) -m venv /tmp/fraud-lock-venv
	/tmp/fraud-lock-venv/bin/pip install --quiet ".[dev]"
	{ echo "# Exact versions tested on Python 3.11 (pip freeze of a fresh venv: \`make lock\` regenerates)."; \
	  /tmp/fraud-lock-venv/bin/pip freeze --exclude fraud-detection; } > requirements.lock

data: setup
	$(BIN)/fraud-generate --customers $(CUSTOMERS) --transactions $(TRANSACTIONS) \
	    --days $(DAYS) --out $(RAW_DIR)

# fraud-promote exits 0 when it promotes or finds no candidate (a model whose training was
# skipped, e.g. too few fraudulent customers: printed and recorded), 1 when the gates refuse
# (expected, recorded) and 2 on errors (fatal).
REFUSED_IS_OK = { rc=$$?; test $$rc -eq 1 && echo "(promotion refused: gate table above; decision recorded)"; }

# The main job: build → train → promote (gates printed) → score with the champion → monitor.
run: data
	mkdir -p "$${FRAUD_WAREHOUSE_DIR:-warehouse}"
	@echo "== 1/5 dbt build: bronze → silver → gold, train and register models"
	$(BIN)/dbt build --selector train --vars '{raw_data_path: $(RAW_DIR)}'
	@echo "== 2/5 promotion: the transaction classifier, the supervised customer model, then the unsupervised one (its refusal is expected and recorded)"
	$(BIN)/fraud-promote --model transaction_classifier --candidate latest || $(REFUSED_IS_OK)
	$(BIN)/fraud-promote --model random_forest --candidate latest || $(REFUSED_IS_OK)
	$(BIN)/fraud-promote --model isolation_forest --candidate latest || $(REFUSED_IS_OK)
	@echo "== 3/5 dbt build: score every customer and every transaction with the champions, append the prediction audit log"
	$(BIN)/dbt build --selector score --vars '{raw_data_path: $(RAW_DIR)}'
	@echo "== 4/5 model metrics; transaction classifier vs customer random forest on the same test transactions"
	$(BIN)/fraud-metrics
	$(BIN)/fraud-metrics side-by-side || { rc=$$?; test $$rc -eq 3 && echo "(side-by-side: no transaction classifier registered at this data size, see above)"; }
	@echo "== 5/5 monitoring (exit 1 = a threshold breached, 3 = no predictions: reported, not fatal here)"
	$(BIN)/fraud-monitor || { rc=$$?; test $$rc -ne 2 && echo "(monitoring alert: exit $$rc, see the report above)"; }
	$(BIN)/fraud-monitor --model transaction_classifier --output reports/monitoring/transaction_classifier \
	    || { rc=$$?; test $$rc -ne 2 && echo "(monitoring alert: exit $$rc, see the report above)"; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p $(TEST_DIR)/lint
	FRAUD_WAREHOUSE_DIR=$(TEST_DIR)/lint $(BIN)/sqlfluff lint models tests/dbt analyses

# dbt on the committed small fixture, plus offline parse for the production adapters.
dbt-test: setup
	rm -rf $(TEST_DIR)/warehouse $(TEST_DIR)/mlflow && mkdir -p $(TEST_DIR)/warehouse
	$(TEST_ENV) $(BIN)/dbt build --target test --vars '$(TEST_VARS)'
	$(TEST_ENV) $(BIN)/dbt docs generate --target test --vars '$(TEST_VARS)' > /dev/null
	$(BIN)/dbt parse --target databricks --no-partial-parse > /dev/null
	$(BIN)/dbt parse --target snowflake --no-partial-parse > /dev/null
	@echo "dbt parse OK for databricks and snowflake (no connection)"

test: lint dbt-test
	$(BIN)/pytest

# The SQL models on local Spark and the fakesnow emulator, compared with DuckDB (also run by
# `make test`; mandatory there when CI=true). Installs Java 17 when missing (root + apt-get).
test-engines: setup
	$(BIN)/pytest tests/python/end_to_end/test_engines.py

bench: setup
	$(BIN)/fraud-bench $(BENCH_ARGS)

# Real-time scoring on 127.0.0.1 (settings: README "Real-time scoring"), on the main job's
# warehouse and registry (run `make run` first).
serve: setup
	$(BIN)/fraud-serve

# Load test of a fraud-serve started here on a free loopback port and stopped afterwards.
LOADTEST_ARGS ?= --rates 100,200,400 --duration 5
LOADTEST_PORT ?= 18765
bench-serve: setup
	FRAUD_SERVE_PORT=$(LOADTEST_PORT) FRAUD_SERVE_LOG_DIR=$(CURDIR)/bench/out/decisions \
	    $(BIN)/fraud-serve & server=$$!; trap 'kill $$server 2>/dev/null || true; wait $$server || true' EXIT; \
	for i in $$(seq 1 120); do curl -sf http://127.0.0.1:$(LOADTEST_PORT)/readyz > /dev/null && break; sleep 1; done; \
	$(BIN)/fraud-loadtest --port $(LOADTEST_PORT) --server-pid $$server --data $(RAW_DIR) $(LOADTEST_ARGS)

# The same steps against fraud-serve with memory state x1, Redis state x1 and Redis x2 workers
# (started by fraud-loadtest itself), on a redis-server started here on a loopback port, with no
# persistence, and stopped afterwards (Debian: apt-get install redis-server).
LOADTEST_REDIS_PORT ?= 16379
bench-serve-workers: setup
	@command -v redis-server > /dev/null || { echo "redis-server missing: apt-get install -y --no-install-recommends redis-server"; exit 2; }
	dir=$$(mktemp -d); redis-server --bind 127.0.0.1 --port $(LOADTEST_REDIS_PORT) --save '' --appendonly no --dir $$dir > $$dir/redis.log 2>&1 & redis=$$!; \
	trap 'kill $$redis 2>/dev/null || true; wait $$redis || true; rm -rf $$dir' EXIT; \
	for i in $$(seq 1 50); do redis-cli -p $(LOADTEST_REDIS_PORT) ping > /dev/null 2>&1 && break; sleep 0.1; done; \
	$(BIN)/fraud-loadtest --compare-workers --redis-url redis://127.0.0.1:$(LOADTEST_REDIS_PORT)/0 --redis-pid $$redis \
	    --port $(LOADTEST_PORT) --data $(RAW_DIR) $(LOADTEST_ARGS)

# mlflow ui runs its server (uvicorn or gunicorn) and workers as child processes, which outlive
# a plain `mlflow` killed by make. Run it in a session (process group) of its own and end that
# whole group when the recipe stops: Ctrl-C, `kill <make pid>` or the server exiting. The store
# is the registry's (FRAUD_MLFLOW_DIR, default .mlflow).
MLFLOW_UI_PORT ?= 5000
mlflow-ui: setup
	setsid $(BIN)/mlflow ui --backend-store-uri "sqlite:///$${FRAUD_MLFLOW_DIR:-.mlflow}/mlflow.db" \
	    --host 127.0.0.1 --port $(MLFLOW_UI_PORT) & \
	ui=$$!; trap 'kill -TERM -- -$$ui 2>/dev/null || true; wait $$ui || true' INT TERM EXIT; \
	wait $$ui

clean:
	rm -rf target logs warehouse .mlflow reports $(TEST_DIR) dbt_packages
