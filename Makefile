# One entry point. Every target sets itself up first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup dev-setup lint test test-fast demo reproduce figures bench llamacpp help
help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

setup:  ## venv + package (prebuilt wheels) + cpu-pool model files + engine check (idempotent)
	@bash scripts/setup.sh

dev-setup:
	@EXTRAS=cluster,dev bash scripts/setup.sh

lint: dev-setup  ## ruff (lint and format check) and mypy
	$(PY) -m ruff check src scripts tests
	$(PY) -m ruff format --check src scripts tests
	$(PY) -m mypy

test: dev-setup  ## the whole test suite, real-model tests included (what CI runs)
	$(PY) -m pytest

test-fast: dev-setup  ## tests that load no real model file
	$(PY) -m pytest -m "not models"

demo: setup  ## the main job on the embedded cpu pool: SALE beside the largest agent alone, table and figure
	$(PY) -m sale.demo $(ARGS)

reproduce: setup  ## the paper stage by stage (scripts/reproduce.sh; STAGES="fit main" for some, POOL=qwen3 for the paper's pool)
	bash scripts/reproduce.sh $(STAGES)

figures: setup  ## execute notebooks/ against the logs and write figures/
	$(PY) scripts/run_notebooks.py

bench: setup  ## backend speed benchmark (writes data/bench/backends.parquet)
	$(PY) scripts/bench_backends.py

# llama-cpp-python (backend llamacpp, pool=cpu_llamacpp) compiles llama.cpp: never with native CPU flags, which crash
# on hosts whose VM does not enable all they announce (AMX, AVX-512), and never from pip's wheel cache, which may hold
# a build made on another CPU.
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
llamacpp: setup  ## optional: llama-cpp-python built portably (6-9 min), the full-vocabulary engine (pool=cpu_llamacpp)
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" FORCE_CMAKE=1 $(PY) -m pip install --no-cache-dir --no-binary llama-cpp-python \
		"llama-cpp-python==0.3.36"
	POOL=cpu_llamacpp bash scripts/setup.sh
