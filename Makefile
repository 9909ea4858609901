# One toolchain: everything a newcomer needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SCENARIO ?= smoke

.DEFAULT_GOAL := help
.PHONY: help venv sysdeps services test test-slow lint generate fmt bench run down status logs seed clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## make .venv with the service and the dev tools installed

sysdeps: ## check (root: install) the Debian packages in scripts/apt-packages.txt
	@scripts/sysdeps.sh

services: sysdeps ## make sure PostgreSQL and Redis answer on loopback
	@scripts/ensure-services.sh

test: venv services ## run the test suite (real PostgreSQL, Redis, moto S3)
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: venv services ## run the long tests too
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: venv ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy dashboards/*.dashboard.py

generate: venv ## regenerate dashboards/json/ and alerts/rules/slos.yml from their Python sources
	$(BIN)/python -m dashboards
	$(BIN)/python -m alerts

fmt: venv ## apply ruff's fixes
	$(BIN)/ruff check --fix .

bench: venv services ## service throughput (BENCH_ARGS="--pairs 20"), load-generator CPU per emit, harness accuracy
	$(BIN)/python -m benchmarks.pairs $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.client_cpu
	$(BIN)/python -m benchmarks.harness_accuracy --pairs 60 --rate 300

run: venv services ## bring the local service up, run a scenario (SCENARIO=smoke, RUN_ARGS=...) and write its report
	@scripts/local.sh up
	$(BIN)/python -m scenarios run $(SCENARIO) --env-file .stack/env $(RUN_ARGS)

down: ## stop what `make run` started
	@scripts/local.sh down

status: ## show what `make run` started
	@scripts/local.sh status

logs: ## follow the service's log
	@scripts/local.sh logs

seed: venv ## load more background data (SEED_ARGS="--conversations 100000 --messages 2000000")
	$(BIN)/python -m sut seed $(SEED_ARGS)

clean: down ## remove the venv and local state
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
