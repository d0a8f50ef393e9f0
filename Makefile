# Each entry point makes its own virtual environment, so a fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit sandbox bench clean lock

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## demo: the main job: private Redis, SQLite, the sandbox, a worker and beat placing calls, live view
demo: $(STAMP)
	$(BIN)/dialq demo

## test: lint, type-check, then the whole suite (real Redis, PostgreSQL, SQLite, worker, sandbox)
test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check dialq tests bench examples
	$(BIN)/ruff format --check dialq tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## unit: the tests that need no server
unit: $(STAMP)
	$(BIN)/pytest tests/unit

## sandbox: the local Symbl API on 127.0.0.1:8765
sandbox: $(STAMP)
	$(BIN)/dialq sandbox --host 127.0.0.1 --port 8765

## bench: every benchmark, each printing its ratio to a baseline measured in the same run
bench: $(STAMP)
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/saturation.py
	$(BIN)/python bench/soak.py --duration 60 --rate 4

## lock: refresh constraints.txt, the tested versions, from a fresh environment (newest allowed)
LOCK_VENV ?= /tmp/dialq-lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
