"""Helpers the notebooks call: output folders and the calibration / held-out token ids."""
from __future__ import annotations

from pathlib import Path

from .. import paths


def output_dir(given: str, default: Path) -> Path:
    """A notebook's output folder: the runner's (``given``) or, run by hand, a ``lab`` default."""
    return paths.ensure(Path(given) if given else Path(default))


def _toy_texts(tokenizer, nsamples: int, seed: int, **_) -> list[str]:
    # The toy reasoner's vocabulary is the task's characters: calibrate it on rendered *training* problems
    # (question + scratchpad + answer, in its chat template), never on the test split it is evaluated on.
    from ..models.toy import render
    from ..models.toy_task import make_problems

    return [render(tokenizer, p["problem"], p["thinking"], p["answer"])
            for p in make_problems(max(4 * nsamples, 64), seed=seed, split="train")]


def _self_traces(tokenizer, nsamples: int, seed: int, model=None, benchmark: str = "", budget: int = 256,
                 store=None, model_name: str | None = None, show_progress: bool = False,
                 evaluate_options: dict | None = None, **_) -> list[str]:
    from .self_traces import self_trace_texts

    return self_trace_texts(model, tokenizer, benchmark, max(nsamples, 16), budget, store, seed,
                            model_name=model_name, show_progress=show_progress, **(evaluate_options or {}))


# Sources that need more than calibration_texts' file readers: (tokenizer, nsamples, seed, **context) -> texts.
CALIBRATION_TEXTS = {"toy-reasoning": _toy_texts, "self-traces": _self_traces}


def calibration_ids(tokenizer, source: str, nsamples: int, seqlen: int, seed: int = 0, **context):
    """Calibration token ids (nsamples, seqlen) for the notebooks: ``toy-reasoning``, ``self-traces`` or any
    source that ``tts_prune.calibration_batches`` reads (gsm8k, builtin, a text/JSONL path, an HF dataset id).

    ``self-traces`` needs ``context``: ``model`` (the *dense* model, before pruning), ``benchmark`` (its
    training split is used), ``budget`` (thinking tokens per trace), ``store`` (where the traces are kept) and
    optionally ``evaluate_options`` for ``tts_prune.evaluate`` (the study's thinking_format, answer_tokens)."""
    from ..pruning.calibration import calibration_batches

    texts = CALIBRATION_TEXTS[source](tokenizer, nsamples, seed, **context) if source in CALIBRATION_TEXTS else source
    return calibration_batches(tokenizer, texts, nsamples=nsamples, seqlen=seqlen, seed=seed)


def heldout_ids(tokenizer, source: str = "", max_tokens: int = 4096):
    """Held-out token ids (n,) for perplexity: ``source`` (a text/JSONL path) or, when empty, the GSM8K
    *test* solutions (calibration draws from GSM8K *train*), else the bundled ``builtin`` text."""
    import torch

    from ..pruning.calibration import calibration_texts

    if not source:
        test = [d / "gsm8k_test.jsonl" for d in (paths.BENCHMARK_DIR, paths.SHARED_BENCHMARK_DIR)]
        source = next((str(p) for p in test if p.exists()), "builtin")
    ids: list[int] = []
    for text in calibration_texts(source):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= max_tokens:
            break
    if len(ids) < 2:
        raise ValueError(f"held-out source {source!r} gave {len(ids)} tokens; pass a text/JSONL file with more text")
    return torch.tensor(ids[:max_tokens], dtype=torch.long)
