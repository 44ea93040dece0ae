"""03-pruning's held-out perplexity: never the calibration text, in the model's own language, and for the
toy reasoner scored on the tokens its training scored (the assistant turn)."""
import math

import pytest
import torch

from tests.conftest import tiny_model
from tts_prune import perplexity
from tts_prune.models.toy import IM_END, assistant_text, build_tokenizer, render
from tts_prune.models.toy_task import make_problems
from tts_prune.pruning.windows import calibration_texts
from tts_prune.study import notebook


def test_toy_heldout_is_its_test_split_with_the_assistant_turn_scored():
    tokenizer = build_tokenizer()
    ids, scored = notebook.heldout(tokenizer, "toy-reasoning", max_tokens=2048)
    assert ids.shape == scored.shape == (2048,) and scored.dtype == torch.bool
    first = make_problems(1, seed=0, split="test")[0]
    head = tokenizer(render(tokenizer, first["problem"]), add_special_tokens=False)["input_ids"]
    tail = tokenizer(assistant_text(first["thinking"], first["answer"]) + IM_END, add_special_tokens=False)["input_ids"]
    assert ids[:len(head) + len(tail)].tolist() == head + tail
    assert scored[:len(head)].sum() == 0 and scored[len(head):len(head) + len(tail)].all()
    calibration = calibration_texts("toy-reasoning", nsamples=16, seed=0, tokenizer=tokenizer)
    assert not any(first["problem"] + IM_END in text for text in calibration)


def test_gsm8k_or_file_heldout_scores_every_token(tmp_path):
    path = tmp_path / "held.txt"
    path.write_text("one two three four five six seven eight nine ten " * 20)
    tokenizer = build_tokenizer()
    ids, scored = notebook.heldout(tokenizer, str(path), max_tokens=64)
    assert ids.numel() == 64 and scored is None


def test_scored_perplexity_equals_a_direct_masked_computation():
    torch.manual_seed(0)
    model = tiny_model("llama").eval()
    ids = torch.randint(0, 128, (40,))
    scored = torch.rand(40) < 0.5
    scored[5] = True
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids[None]).logits[0, :-1].double(), -1)
    nll = -logp[torch.arange(39), ids[1:]]
    expected = math.exp(float(nll[scored[1:]].mean()))
    assert perplexity(model, None, ids, seqlen=64, show_progress=False, scored=scored) == pytest.approx(expected, rel=1e-4)
    # windows: each scored token still counts once
    assert perplexity(model, None, ids, seqlen=16, stride=8, show_progress=False, scored=scored) > 1
    with pytest.raises(ValueError, match="one bool per token"):
        perplexity(model, None, ids, seqlen=16, show_progress=False, scored=scored[:10])


def test_unknown_heldout_source_is_a_clear_error(tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match="nope"):
        notebook.heldout(build_tokenizer(), str(tmp_path / "nope.txt"))
