"""tts-prune: what pruning does to the test-time scaling of reasoning LLMs.

The public API is imported lazily, so ``import tts_prune`` stays fast and a notebook only pays for
torch and transformers when it uses them. Each name maps to the module that defines it.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # models and layer discovery (foundation)
    "load_model": "models.loading",
    "ModelLoadError": "models.embedded",
    "EMBEDDED": "models.embedded",
    "DEFAULT_MODEL": "models.embedded",
    "embedded_model_dir": "models.embedded",
    "embedded_tokenizer": "models.embedded",
    "model_fingerprint": "models.loading",
    "decoder_layers": "models.layers",
    "prunable_linears": "models.layers",
    "layer_summary": "models.layers",
    "NoDecoderLayersError": "models.layers",
    "use_threads": "models.runtime",
    # pruning (issue #3)
    "PruneConfig": "pruning.config",
    "PruneResult": "pruning.driver",
    "prune": "pruning.driver",
    "sparsity_report": "pruning.driver",
    "save_pruned": "pruning.save",
    "PRUNERS": "pruning.methods",
    "ALLOCATORS": "pruning.allocation",
    "allocate": "pruning.allocation",
    "activation_profile": "pruning.allocation",
    "calibration_batches": "pruning.calibration",
    "block_influence": "pruning.shortgpt",
    "perplexity": "pruning.ppl",
    "trace_divergence": "pruning.divergence",
    "divergence_summary": "pruning.divergence",
    # toy reasoner (issue #5)
    "make_problems": "models.toy_task",
    "ToyConfig": "models.toy",
    "train_toy_reasoner": "tts.toy_reasoner",
    "budget_accuracy": "tts.toy_reasoner",
    # test-time scaling evaluation (issue #6)
    "evaluate": "tts.evaluation",
    "open_engine": "tts.engine",
    "Engine": "tts.engine",
    "grade": "tts.evaluation",
    "JudgeConfig": "tts.judge",
    "PROTOCOLS": "tts.grading",
    "load_results": "tts.results",
    "accuracy_table": "tts.stats",
    "paired_difference": "tts.stats",
    "majority_accuracy": "tts.stats",
    "pass_at_k": "tts.metrics",
    "maj_at_k": "tts.metrics",
    "parallel_table": "tts.metrics",
    "token_cost_table": "tts.metrics",
    "adjust_pvalues": "tts.multiplicity",
    # results a skeptical reviewer accepts (issue #22)
    "variance_components": "report.reviewer",  # the store's frame, runs labelled; tts.variance computes
    "paired_variance": "tts.variance",
    "power_table": "report.reviewer",
    "minimum_detectable_difference": "tts.variance",
    "more_seeds": "tts.sequential",
    "seeds_until_precise": "tts.sequential",
    "scaling_slopes": "report.reviewer",
    "slope_tests": "tts.slopes",
    "failure_breakdown": "report.reviewer",
    "failure_differences": "tts.failures",
    "trace_diagnostics": "tts.diagnostics",
    "diagnostics_table": "tts.diagnostics",
    "overthinking_test": "tts.diagnostics",
    "BENCHMARKS": "tts.benchmarks",
    "load_benchmark": "tts.benchmarks",
    "redact": "tts.benchmarks",
    "DecodingConfig": "tts.generation",
    "FORMATS": "tts.formats",
    "ThinkingFormat": "tts.formats",
    "detect_format": "tts.formats",
    "open_backend": "tts.backends",
    "ModelArtifact": "tts.backends",
    # the study: grid runner and report (issue #4)
    "StudyConfig": "study.grid",
    "load_study": "study.grid",
    "run_study": "study.runner",
    "plan_study": "study.plan",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'tts_prune' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
