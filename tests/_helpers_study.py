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
    """Run studies/smoke.yaml once per test session on the tiny model, in a temporary output tree.

    Under pytest-xdist (``make test``) the run is shared by every worker of the session: the first to ask runs
    it under a file lock in a folder named by the session's id, the others wait for it and reuse it.
    """
    import fcntl
    import os

    from tts_prune import paths
    from tts_prune.study import grid, runner
    from tts_prune.tts import benchmarks

    session = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if session:
        out = Path(tempfile.gettempdir()) / f"tts-prune-smoke-{session}"
        out.mkdir(exist_ok=True)
    else:
        out = Path(tempfile.mkdtemp(prefix="tts-prune-smoke-"))
    dirs = dict(reports=out / "reports", results=out / "results", figures=out / "figures", models_out=out / "models")
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while the run is made; released when this process has it
        done = out / "done"
        model = str(out / "tiny-llama")
        if done.exists():  # another worker of this session made it
            cfg = grid.load_study(ROOT / "studies" / "smoke.yaml", models=[model])
            cells = grid.expand(cfg, show_progress=False, **dirs)
        else:
            if not benchmarks.available("gsm8k") and paths.SHARED_BENCHMARK_DIR.exists():
                benchmarks.fetch(show_progress=False)  # what `make data` does: copy the shared benchmark files
            tiny_model_dir(Path(model))
            cfg = grid.load_study(ROOT / "studies" / "smoke.yaml", models=[model])
            cells = runner.run_study(cfg, show_progress=False, **dirs)
            done.touch()
    return {"out": out, "model": model, "cells": cells, "study": cfg, **dirs}


def overlap(a: dict, b: dict) -> bool:
    """Whether two cells' markers (``started`` / ``finished`` times) overlap in time."""
    return a["started"] < b["finished"] and b["started"] < a["finished"]


# Parts of an artifact that measure the run (seconds) or name its folder, not what it computed.
_VOLATILE = ("seconds", "path", "dir")


def _deterministic(path: Path):
    import json

    import pandas as pd

    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if not any(w in k for w in _VOLATILE)} if isinstance(data, dict) else data
    table = pd.read_csv(path)
    return table[[c for c in table.columns if not any(w in c for w in _VOLATILE)]]


def assert_same_results(out: Path, sequential: dict) -> None:
    """A smoke study run under ``out`` (results/, figures/) made what ``smoke_run()`` made: the same records
    (every key, what was generated and graded), and the same tables and figure data from every notebook."""
    import json

    import pandas as pd

    from tts_prune.tts.results import load_results

    ours = load_results(out / "results" / "smoke" / "records").set_index("key").sort_index()
    theirs = load_results(sequential["results"] / "smoke" / "records").set_index("key").sort_index()
    assert list(ours.index) == list(theirs.index) and len(ours) > 0
    compared = ["model", "benchmark", "problem_id", "budget", "seed", "prompt", "thinking", "answer", "prediction",
                "gold", "correct", "thinking_tokens", "answer_tokens", "capped", "model_hash"]  # not batch_seconds
    pd.testing.assert_frame_equal(ours[compared], theirs[compared])
    assert (ours["recipe"].map(json.dumps) == theirs["recipe"].map(json.dumps)).all()

    for kind, ours_root, theirs_root in (("artifacts", out / "results", sequential["results"]),
                                         ("figures", out / "figures", sequential["figures"])):
        files = sorted(p.relative_to(theirs_root) for p in theirs_root.rglob("*") if p.suffix in (".json", ".csv"))
        files = [f for f in files if "records" not in f.parts]
        assert files == sorted(p.relative_to(ours_root) for p in ours_root.rglob("*")
                               if p.suffix in (".json", ".csv") and "records" not in p.relative_to(ours_root).parts)
        assert files or kind == "figures"
        for rel in files:
            ours_part, theirs_part = _deterministic(ours_root / rel), _deterministic(theirs_root / rel)
            if isinstance(theirs_part, pd.DataFrame):
                pd.testing.assert_frame_equal(ours_part, theirs_part, obj=str(rel))
            else:
                assert ours_part == theirs_part, rel
