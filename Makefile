# One toolchain: everything a newcomer needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SCENARIO ?= smoke
NAMESPACE ?= chatload

.DEFAULT_GOAL := help
.PHONY: help venv sysdeps services test test-slow fuzz lint generate fmt bench bench-more up run down status logs backup restore seed clean deploy-bluegreen rollback-bluegreen

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

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

fuzz: venv services ## fuzz the REST API and socket.io with a far larger budget, random (FUZZ_EXAMPLES=1000 per operation; FUZZ_SEED=N replays)
	FUZZ_MAX_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) FUZZ_SEED=$(or $(FUZZ_SEED),$$RANDOM) \
		$(BIN)/pytest -q -s -m fuzz --timeout=1800 $(PYTEST_ARGS)

lint: venv ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy dashboards/*.dashboard.py

generate: venv ## regenerate dashboards/json/, alerts/rules/slos.yml and k8s/monitoring/ from their sources
	$(BIN)/python -m dashboards
	$(BIN)/python -m alerts
	$(BIN)/python -m k8s

fmt: venv ## apply ruff's fixes
	$(BIN)/ruff check --fix .

bench: venv services ## the five performance figures side by side -> bench/results.{json,md} (BENCH_ARGS="--profile --before FILE")
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

bench-more: venv services ## the older comparisons: socket.io vs REST vs asyncio loop, client CPU per emit, harness accuracy
	$(BIN)/python -m benchmarks.pairs
	$(BIN)/python -m benchmarks.client_cpu
	$(BIN)/python -m benchmarks.harness_accuracy --pairs 60 --rate 300

up: venv ## start the local stack: 2 instances behind nginx, S3, Prometheus, Alertmanager, exporters
	@scripts/sysdeps.sh --optional
	$(BIN)/python -m stack up $(UP_ARGS)

run: venv ## up if needed, run a scenario (SCENARIO=smoke, RUN_ARGS=...) through nginx, write its report
	@scripts/sysdeps.sh --optional
	$(BIN)/python -m stack run $(SCENARIO) -- $(RUN_ARGS)

down: ## stop the local stack
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m stack down; fi

status: venv ## the local stack's processes, their health and URLs
	$(BIN)/python -m stack status

logs: venv ## follow the local stack's logs (LOGS="sut-1 nginx" for some)
	$(BIN)/python -m stack logs $(LOGS)

backup: venv ## pg_dump the service's database into .stack/backups/ and the bucket's backups/ prefix
	$(BIN)/python -m stack backup

restore: venv ## restore a backup into a fresh database (FILE=path|backups/NAME|s3://bucket/key, INTO=name, REPLACE=1)
	@test -n "$(FILE)" || { echo "usage: make restore FILE=.stack/backups/NAME.dump [INTO=database]" >&2; exit 2; }
	$(BIN)/python -m stack restore "$(FILE)" $(if $(INTO),--into "$(INTO)") $(if $(REPLACE),--replace)

seed: venv ## load more background data (SEED_ARGS="--conversations 100000 --messages 2000000")
	$(BIN)/python -m sut seed $(SEED_ARGS)

deploy-bluegreen: venv ## migrate, then switch to IMAGE=... on the idle slot (NAMESPACE=chatload; DRY_RUN=1 LIVE=blue: print only)
	@test -n "$(IMAGE)" || { echo "usage: make deploy-bluegreen IMAGE=registry/sut:tag [NAMESPACE=chatload] [DRY_RUN=1 LIVE=blue]" >&2; exit 2; }
	$(BIN)/python -m k8s.bluegreen deploy --image "$(IMAGE)" --namespace "$(NAMESPACE)" $(if $(DRY_RUN),--dry-run) $(if $(LIVE),--live "$(LIVE)")

rollback-bluegreen: venv ## switch back to the previous slot (NAMESPACE=chatload, TO=blue|green; DRY_RUN=1 TO=blue: print only)
	$(BIN)/python -m k8s.bluegreen rollback --namespace "$(NAMESPACE)" $(if $(DRY_RUN),--dry-run) $(if $(TO),--to "$(TO)")

clean: down ## remove the venv and local state
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
