# Fleetlog: one command to run the demo, one to run every check. Both set everything up
# on a fresh machine (a virtualenv in .venv with the project and its dev tools).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Fleetlog needs Python >= 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The main job on the embedded default (SQLite in .fleetlog/): submit a dependency graph
## for two tenants, run three workers, freeze one mid-job, reap it, print the history.
demo: $(STAMP)
	$(BIN)/fleetlog demo

## Every check CI runs: lint, types, and the whole test suite (unit, contract, migration,
## integration, acceptance) against real SQLite and real PostgreSQL on 127.0.0.1:5432.
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

## The benchmark against the peer queues (see bench/README.md); one run, same machine.
bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) .fleetlog .pytest_cache .mypy_cache .ruff_cache .hypothesis
