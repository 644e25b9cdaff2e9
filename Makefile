# llmp: `make run` starts the platform locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := gateway,semantic,gguf,models-local,local,dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package-lock.json | sha1sum | cut -c1-12)

export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	npm ci --no-audit --no-fund --loglevel=error   # Azurite, the Azure Storage emulator
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "Installing llmp (the first time, llama-cpp-python compiles from source: about 15 minutes)"
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

run: install  ## start Postgres, Redis, the GGUF server(s) and the gateway on http://127.0.0.1:7071
	$(BIN)/llmp serve

test: install lint  ## lint, type-check, then every test (slow ones included)
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check functions models llmp_cli tests bench function_app.py
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest $(ARGS)

bench: install  ## gateway overhead vs direct and vs LiteLLM (see docs/benchmarks.md)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf .llmp .pytest_cache .mypy_cache .ruff_cache
