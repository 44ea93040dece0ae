"""Shared by the study tests: a tiny real-tokenizer model and one cached run of the smoke study."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_model_dir(target: Path) -> Path:
    """A 2-block random-init Llama with SmolLM2's tokenizer and chat template, saved like any HF model."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tts_prune.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@functools.lru_cache(maxsize=1)
def smoke_run() -> dict:
    """Run studies/smoke.yaml once per test session on the tiny model, in a temporary output tree."""
    from tts_prune import paths
    from tts_prune.study import grid, runner
    from tts_prune.tts import benchmarks

    if not benchmarks.available("gsm8k") and paths.SHARED_BENCHMARK_DIR.exists():
        benchmarks.fetch(show_progress=False)  # what `make data` does: copy the shared benchmark files
    out = Path(tempfile.mkdtemp(prefix="tts-prune-smoke-"))
    model = str(tiny_model_dir(out / "tiny-llama"))
    cfg = grid.load_study(ROOT / "studies" / "smoke.yaml", models=[model])
    dirs = dict(reports=out / "reports", results=out / "results", figures=out / "figures", models_out=out / "models")
    cells = runner.run_study(cfg, show_progress=False, **dirs)
    return {"out": out, "model": model, "cells": cells, "study": cfg, **dirs}
