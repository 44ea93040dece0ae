"""tts-prune: what pruning does to the test-time scaling of reasoning LLMs.

The public API is imported lazily, so ``import tts_prune`` stays fast and a notebook only pays for
torch and transformers when it uses them. Each name maps to the module that defines it.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # models and layer discovery (foundation)
    "load_model": "models",
    "ModelLoadError": "models",
    "EMBEDDED": "models",
    "DEFAULT_MODEL": "models",
    "model_fingerprint": "models",
    "decoder_layers": "layers",
    "prunable_linears": "layers",
    "layer_summary": "layers",
    "NoDecoderLayersError": "layers",
    # pruning (issue #3)
    "PruneConfig": "pruning",
    "PruneResult": "pruning",
    "prune": "pruning",
    "sparsity_report": "pruning",
    "save_pruned": "pruning",
    "PRUNERS": "pruning",
    "ALLOCATORS": "allocation",
    "allocate": "allocation",
    "activation_profile": "allocation",
    "calibration_batches": "calibration",
    "block_influence": "shortgpt",
    "perplexity": "ppl",
    # toy reasoner (issue #5)
    "make_problems": "toy_task",
    "ToyConfig": "toy",
    "train_toy_reasoner": "toy",
    "budget_accuracy": "toy",
    # test-time scaling evaluation (issue #6)
    "evaluate": "evaluation",
    "grade": "evaluation",
    "load_results": "results",
    "accuracy_table": "stats",
    "paired_difference": "stats",
    "majority_accuracy": "stats",
    "BENCHMARKS": "benchmarks",
    "load_benchmark": "benchmarks",
    "redact": "benchmarks",
    "DecodingConfig": "generation",
    "FORMATS": "prompting",
    "ThinkingFormat": "prompting",
    # the study: grid runner and report (issue #4)
    "StudyConfig": "study",
    "load_study": "study",
    "run_study": "study",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'tts_prune' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
