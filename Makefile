# Everything a fresh machine needs, in two targets: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sf-pipeline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	scripts/ensure-chromium
	scripts/ensure-azurite
	scripts/ensure-postgres
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the inner loop: everything but the end-to-end tests (pytest -m e2e), with no lint
test-fast: $(STAMP)
	scripts/ensure-azurite
	$(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache test-output
