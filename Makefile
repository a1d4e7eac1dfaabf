.DEFAULT_GOAL := help
SHELL := /bin/bash
PY := .venv/bin/python
CONFIG ?= config.example.yaml
PORT ?= 8317
export UV_PYTHON_DOWNLOADS ?= never
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help setup run test lint typecheck format unit e2e bench lock proto-schema

help: ## list the targets
	@grep -E '^[A-Za-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: ## create .venv with every package (pinned in requirements.lock.txt)
	@scripts/setup.sh

run: setup ## start the whole gateway locally, supervised (options: CONFIG=your.yaml PORT=8317)
	@scripts/ensure-redis.sh
	@$(PY) -m llmbus.devstack --config "$(CONFIG)" --port "$(PORT)"

test: setup lint typecheck ## lint, type-check and run every test
	@scripts/ensure-redis.sh
	$(PY) -m pytest -q

lint: setup ## ruff check and format check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: setup ## mypy --strict on proto, libs, services, tests and bench
	.venv/bin/mypy proto/src libs/*/src services/*/src tests bench

format: setup ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

unit: setup ## unit and contract tests only (no sockets)
	$(PY) -m pytest -q tests/unit tests/contract

e2e: setup ## end-to-end tests only
	$(PY) -m pytest -q tests/e2e

bench: setup ## direct, llmbus and LiteLLM side by side (options: make bench ARGS="--skip-litellm"; bench/README.md)
	$(PY) -m bench $(ARGS)

lock: ## re-resolve dependencies and write requirements.lock.txt
	uv lock --upgrade
	uv export --no-hashes --all-packages --all-groups --no-header -o requirements.lock.txt >/dev/null

proto-schema: setup ## regenerate proto/schema/v1.json after an additive contract change
	$(PY) -c "import json; from llmbus.proto.schema import schema_document; open('proto/schema/v1.json','w').write(json.dumps(schema_document(), indent=2, sort_keys=True) + '\n')"
