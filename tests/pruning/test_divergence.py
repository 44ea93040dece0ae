"""Dense-vs-pruned KL against a direct softmax computation, one sequence at a time, on a tiny random model."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import tiny_model
from tts_prune.pruning.divergence import _Reader, divergence_summary, token_kl, trace_divergence


def pruned_copy(model, share=0.5, seed=1):
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if name.startswith("model.layers") and param.ndim == 2:
                param.mul_((torch.rand(param.shape, generator=generator) >= share).float())
    return other


def direct_kl(dense, pruned, prompt, cont):
    ids = torch.tensor([list(prompt) + list(cont)])
    with torch.no_grad():
        p = torch.softmax(dense(input_ids=ids).logits[0].double(), -1).numpy()
        q = torch.softmax(pruned(input_ids=ids).logits[0].double(), -1).numpy()
    rows = range(len(prompt) - 1, len(prompt) - 1 + len(cont))
    return np.array([np.sum(p[t] * np.log(p[t] / q[t])) for t in rows])


def test_token_kl_matches_direct_softmax_with_padding():
    torch.manual_seed(0)
    dense = tiny_model("llama")
    pruned = pruned_copy(dense)
    rng = np.random.default_rng(0)
    sequences = [(rng.integers(1, 128, size=a).tolist(), rng.integers(1, 128, size=b).tolist())
                 for a, b in [(5, 9), (2, 3), (7, 12)]]
    table = token_kl(dense, pruned, sequences, batch_size=2)  # batches of unequal lengths: padding is exercised
    assert len(table) == 9 + 3 + 12
    for trace, (prompt, cont) in enumerate(sequences):
        got = table[table["trace"] == trace].sort_values("position")["kl"].to_numpy()
        assert got == pytest.approx(direct_kl(dense, pruned, prompt, cont), rel=1e-4, abs=1e-6)
    assert (table["kl"] > 0).all()
    same = token_kl(dense, dense, sequences)
    assert same["kl"].abs().max() < 1e-5


@pytest.mark.parametrize("family", ["qwen2", "gemma2", "gpt2"])
def test_streamed_slices_match_the_direct_softmax_for_any_slice_size(family):
    # gemma2 soft-caps its logits (final_logit_softcapping), gpt2 has no get_decoder-style `model` attribute
    dense = tiny_model(family)
    with torch.no_grad():  # a logit scale that makes the soft-cap matter (tanh(x / 30) is not x at |x| ~ 30)
        dense.get_output_embeddings().weight.mul_(40.0)
    pruned = pruned_copy(dense)
    rng = np.random.default_rng(1)
    sequences = [(rng.integers(1, 128, size=a).tolist(), rng.integers(1, 128, size=b).tolist())
                 for a, b in [(3, 17), (1, 5), (6, 0), (2, 9)]]  # an empty continuation adds no rows
    tables = [token_kl(dense, pruned, sequences, slice_size=size, device="cpu") for size in (1, 4, 1000)]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])
    table = tables[0]
    assert table["trace"].tolist() == [0] * 17 + [1] * 5 + [3] * 9 and table["length"].max() == 17
    for trace, (prompt, cont) in enumerate(sequences):
        if cont:  # abs: float32 log-probabilities of logits ~30 carry ~2e-6 of rounding (the float64 reference none)
            got = table[table["trace"] == trace]["kl"].to_numpy()
            assert got == pytest.approx(direct_kl(dense, pruned, prompt, cont), rel=1e-4, abs=5e-6)
    # The streamed head gives the model's own distribution (soft-cap included) at every position.
    ids = list(sequences[0][0]) + list(sequences[0][1])
    reader = _Reader(dense)
    with torch.no_grad():
        own = torch.log_softmax(dense(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    assert torch.allclose(reader.log_probs(reader.hidden(ids)).double(), own, atol=1e-4)
    with pytest.raises(ValueError, match="slice_size=0"):
        token_kl(dense, pruned, sequences, slice_size=0)


def test_a_model_that_post_processes_its_logits_is_refused():
    dense = tiny_model("llama")
    pruned = pruned_copy(dense)
    # A head whose logits are scaled after the LM head (as Cohere's logit_scale does): the streamed head would
    # measure another distribution, so the check on each trace's last position refuses it.
    pruned.register_forward_hook(lambda module, args, output: output.__setitem__("logits", output.logits * 0.5))
    with pytest.raises(ValueError, match="post-processes them"):
        token_kl(dense, pruned, [([1, 2, 3], [4, 5])])


def test_trace_divergence_on_records_and_summary():
    from tts_prune.models.toy import build_tokenizer

    tokenizer = build_tokenizer()
    dense = tiny_model("llama")
    pruned = pruned_copy(dense, share=0.3)
    records = pd.DataFrame({"prompt": ["<|im_start|>user\n2+3<|im_end|>\n", "Q: 7*6"],
                            "thinking": ["2+3=5", "7*6=42 so"], "problem_id": ["a", "b"], "seed": [0, 0]})
    table = trace_divergence(dense, pruned, tokenizer, records)
    assert table.groupby("problem_id")["length"].first().tolist() == [5, 9]  # character-level tokenizer
    ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected = direct_kl(dense, pruned, ids(records["prompt"][1]), ids(records["thinking"][1]))
    assert table[table["problem_id"] == "b"]["kl"].to_numpy() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="thinking"):
        trace_divergence(dense, pruned, tokenizer, records.drop(columns="thinking"))


def test_summary_by_relative_position():
    table = pd.DataFrame({"trace": [0] * 4 + [1] * 2, "position": [0, 1, 2, 3, 0, 1], "length": [4] * 4 + [2] * 2,
                          "kl": [1.0, 2.0, 3.0, 4.0, 10.0, 20.0]})
    summary = divergence_summary(table, bins=2)
    assert summary["kl_mean"] == pytest.approx(40 / 6) and summary["kl_trace_mean"] == pytest.approx((2.5 + 15) / 2)
    assert summary["by_position"] == [(0, pytest.approx((1 + 2 + 10) / 3)), (1, pytest.approx((3 + 4 + 20) / 3))]


def test_peak_memory_is_flat_in_the_number_and_length_of_traces():
    """Peak RSS of a fresh process running ``token_kl`` (``_divergence_memory``) with 32-position LM-head slices:
    after a 1-trace warm-up, 32 traces and then a 4096-token trace add less than 128 MB. The batched version
    this replaces held (batch, T, vocab) float32 log-probabilities of both models: at batch 8 that is 2 x 311 MB
    for 32 traces of 64 tokens and 2 x 2.5 GB for one trace of 4096 tokens. A last run with 1024-position
    slices shows the measure does see logits: its (1024, vocab) buffers (623 MB each) raise the peak."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    runs = [(1, 64, 32), (1, 64, 32), (32, 64, 32), (1, 256, 32), (1, 4096, 32), (1, 1024 + 16, 1024)]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "tests.pruning._divergence_memory", json.dumps(runs)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    base = peaks["1x64/32"]  # after the warm-up: the model, the libraries, one slice's buffers
    assert peaks["32x64/32"] - base < 128, peaks
    assert peaks["1x256/32"] - base < 128, peaks
    assert peaks["1x4096/32"] - base < 128, peaks
    assert peaks["1x1040/1024"] - peaks["1x4096/32"] > 500, peaks  # one (1024, 152064) float32 buffer is 623 MB
