"""The calibration loop: data windows, captured block inputs on every family, hook statistics."""
import gzip
import json

import pytest
import torch

from tests.conftest import FAMILIES, tiny_model
from tts_prune import calibration_batches
from tts_prune.pruning.calibration import LinearStats, _StopForward, calibration_texts, walk_blocks
from tts_prune.models.layers import prunable_linears


class CharTokenizer:
    """Independent toy tokenizer: one id per character (mod 120), EOS = 127."""

    eos_token_id = 127

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 120 for c in text]}


def _ids(n=3, seqlen=16, seed=0):
    return torch.randint(0, 128, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def test_batches_are_seeded_windows_of_the_stream(tmp_path):
    text = "".join(chr(65 + i % 26) for i in range(500))
    path = tmp_path / "calib.txt"
    path.write_text(text, encoding="utf-8")
    ids = calibration_batches(CharTokenizer(), str(path), nsamples=5, seqlen=20, seed=3)
    assert ids.shape == (5, 20) and ids.dtype == torch.long
    stream = [ord(c) % 120 for c in text] + [127]
    for row in ids.tolist():  # every row is a contiguous window of the token stream
        assert any(stream[s:s + 20] == row for s in range(len(stream) - 19))
    assert torch.equal(ids, calibration_batches(CharTokenizer(), str(path), 5, 20, seed=3))
    assert not torch.equal(ids, calibration_batches(CharTokenizer(), str(path), 5, 20, seed=4))


def test_jsonl_traces_and_errors(tmp_path):
    path = tmp_path / "traces.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(3):
            handle.write(json.dumps({"prompt": f"Q{i}", "completion": "think " * 10, "score": 1}) + "\n")
    texts = calibration_texts(str(path))
    assert texts == [f"Q{i}\n" + "think " * 10 for i in range(3)]
    with pytest.raises(ValueError, match="seqlen=1000"):
        calibration_batches(CharTokenizer(), str(path), nsamples=1, seqlen=1000)
    with pytest.raises(FileNotFoundError, match="not 'gsm8k'"):
        calibration_texts("no-such-file.txt")


def test_gsm8k_source_is_bundled():
    texts = calibration_texts("gsm8k")
    assert len(texts) > 1000 and "####" in texts[0]


def test_stop_signal_is_private_not_valueerror():
    assert not issubclass(_StopForward, ValueError)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_walk_reproduces_dense_hidden_states(family):
    """Block inputs seen by the walk equal the model's own hidden states: masks, rotary embeddings,
    Conv1D and sandwich norms all reach each block as in a normal forward."""
    model = tiny_model(family)
    ids = _ids()
    with torch.no_grad():
        reference = model(input_ids=ids, output_hidden_states=True).hidden_states
    steps = 0
    for step in walk_blocks(model, ids, batch_size=2, show_progress=False):  # chunks of 2 and 1
        assert [x.shape[0] for x in step.inputs] == [2, 1]
        torch.testing.assert_close(torch.cat(step.inputs), reference[step.index], atol=1e-5, rtol=1e-5)
        steps += 1
    assert steps == len(reference) - 1


def test_walk_feeds_pruned_outputs_forward():
    model = tiny_model("llama")
    ids = _ids()
    seen = []
    for step in walk_blocks(model, ids, show_progress=False):
        seen.append(torch.cat(step.inputs))
        if step.index == 0:  # zero the block's MLP output: block 1 must then see h_in + attention only
            prunable_linears(step.block)["mlp.down_proj"].weight.data.zero_()
    with torch.no_grad():
        reference = model(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(seen[1], reference[1], atol=1e-5, rtol=1e-5)


def test_linear_stats_match_direct_computation():
    x = torch.randn(2, 7, 5, generator=torch.Generator().manual_seed(1))
    stats = LinearStats(torch.zeros(5), torch.zeros(5, 5))
    stats.add(x[0])
    stats.add(x[1])
    flat = x.reshape(-1, 5)
    torch.testing.assert_close(stats.sq_norm, (flat ** 2).sum(0))
    torch.testing.assert_close(stats.hessian, 2 * flat.t() @ flat / 14, atol=1e-6, rtol=1e-5)
    assert stats.tokens == 14


def test_builtin_calibration_text_is_committed_utf8():
    texts = calibration_texts("builtin")
    assert texts and all(len(t) > 1000 for t in texts)
    ids = calibration_batches(CharTokenizer(), "builtin", nsamples=2, seqlen=64, seed=0)
    assert ids.shape == (2, 64)
