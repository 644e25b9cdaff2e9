# llmp: `make run` starts the platform locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := gateway,semantic,gguf,embedding,models-local,local,rag,dev,deploy
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package-lock.json | sha1sum | cut -c1-12)

export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck pytest bench clean tools

# checkov (tests/deploy) lives in its own venv: it pins many packages that would fight the project's.
TOOLS_VENV ?= .venv-tools
CHECKOV_VERSION := 3.3.30
TOOLS_STAMP := $(TOOLS_VENV)/.installed-checkov-$(CHECKOV_VERSION)

$(STAMP): pyproject.toml package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	npm ci --no-audit --no-fund --loglevel=error   # Azurite, the Azure Storage emulator
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "Installing llmp (the first time, llama-cpp-python compiles from source: about 15 minutes)"
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

$(TOOLS_STAMP):
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q 'checkov==$(CHECKOV_VERSION)'
	@rm -f $(TOOLS_VENV)/.installed-*
	@touch $@

tools: $(TOOLS_STAMP)  ## checkov, for tests/deploy

run: install  ## start Postgres, Redis, the GGUF and embedding servers and the gateway on http://127.0.0.1:7071
	$(BIN)/llmp serve

test: install tools lint  ## lint, type-check, then every test (slow ones included)
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check functions models llmp_cli tests bench function_app.py
	$(BIN)/ruff check pipelines/scripts
	$(BIN)/mypy

pytest: install tools
	$(BIN)/python -m pytest $(ARGS)

bench: install  ## gateway overhead vs direct and vs LiteLLM (see docs/benchmarks.md)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf .llmp .pytest_cache .mypy_cache .ruff_cache
