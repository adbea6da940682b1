# Two entry points: `make run` serves InstaShare (with its workers), `make test` runs every check.
# uv is installed into .tools/ on first use when it is not already on PATH.
SHELL := /bin/bash
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint lint-migrations typecheck pytest install migrate worker clean

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

install: $(UV)
	$(UV) sync --frozen

run: install
	$(UV) run instashare serve --host $(HOST) --port $(PORT)

worker: install
	$(UV) run instashare worker

migrate: install
	$(UV) run alembic upgrade head

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

# squawk over the SQL of every revision (pytest runs the same check in `make test`).
lint-migrations: install
	$(UV) run pytest tests/unit/test_migration_lint.py -q

typecheck: install
	$(UV) run mypy

pytest: install
	$(UV) run pytest --cov --cov-report=term-missing $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf .tools .venv .pytest_cache .mypy_cache .ruff_cache .coverage
