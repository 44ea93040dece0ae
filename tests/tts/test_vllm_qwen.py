"""vLLM on the embedded Qwen2.5 after pruning (run by `make rehearsal` in .venv-vllm, after `make qwen`).

The records vLLM writes must come from the pruned weights: their ``model_hash`` is the pruned model's
fingerprint, not the dense one's, and greedy float32 decoding through vLLM equals the transformers backend
token for token on the same prompts (s1 format, MATH500).
"""
import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make test-vllm` builds .venv-vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.qwen]

import torch  # noqa: E402

QWEN = "qwen2.5-coder-0.5b-instruct"


def test_pruned_qwen_through_vllm_is_the_pruned_model_and_matches_transformers(tmp_path):
    import tts_prune

    torch.set_num_threads(2)
    model, tokenizer = tts_prune.load_model(QWEN, dtype="float32", device="cpu")
    dense = tts_prune.model_fingerprint(model)
    result = tts_prune.prune(model, tokenizer, tts_prune.PruneConfig("magnitude", 0.1), show_progress=False)
    pruned = tts_prune.model_fingerprint(model)
    assert pruned != dense and abs(result.global_sparsity - 0.1) < 0.005
    common = dict(limit=2, temperature=0.0, thinking_format="s1", answer_tokens=12, show_progress=False,
                  recipe={"method": "magnitude", "sparsity": 0.1}, model_name=QWEN)
    ours = tts_prune.evaluate((model, tokenizer), "math500", [16, 48], backend="transformers",
                              out=tmp_path / "transformers", **common)
    # On CPU gpu_memory_utilization is the share of RAM vLLM reserves (2.4 GB of fp32 weights + KV cache).
    engine = {"dtype": "float32", "max_model_len": 2048, "gpu_memory_utilization": 0.15, "enforce_eager": True,
              "artifact_root": tmp_path / "artifacts"}
    theirs = tts_prune.evaluate((model, tokenizer), "math500", [16, 48], backend="vllm", out=tmp_path / "vllm",
                                vllm_options=engine, **common)
    assert set(theirs["backend"]) == {"vllm"} and set(ours["backend"]) == {"transformers"}
    assert set(theirs["model_hash"]) == set(ours["model_hash"]) == {pruned}
    keys = ["problem_id", "budget", "seed"]
    ours, theirs = ours.sort_values(keys).reset_index(drop=True), theirs.sort_values(keys).reset_index(drop=True)
    for column in ["thinking_tokens", "capped", "answer_tokens", "prediction", "correct", "no_answer"]:
        assert ours[column].tolist() == theirs[column].tolist(), column
