"""The one registry of named calibration sources (pruning.windows.TEXT_SOURCES): the toy task's conversations
work inside the package (PruneConfig(calibration="toy-reasoning")), as the notebooks draw them."""
import copy

import pytest
import torch

from tests.conftest import tiny_model
from tts_prune.models.toy import build_tokenizer, render
from tts_prune.models.toy_task import make_problems
from tts_prune.pruning import windows
from tts_prune.pruning.driver import PruneConfig, prune


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_toy_reasoning_windows_are_packed_training_conversations(tokenizer):
    ids = windows.calibration_batches(tokenizer, "toy-reasoning", nsamples=4, seqlen=40, seed=3)
    # independently: rendered *train* problems (4 x nsamples, at least 64), packed as any list of short texts
    texts = [render(tokenizer, p["problem"], p["thinking"], p["answer"])
             for p in make_problems(64, seed=3, split="train")]
    assert torch.equal(ids, windows.packed_windows(tokenizer, texts, 4, 40, 3))
    test_problems = {p["problem"] for p in make_problems(200, seed=3, split="test")}
    for row in ids.tolist():  # character-level tokenizer: decoding gives the exact text
        for piece in filter(None, tokenizer.decode(row).split("\n\n")):
            assert any(piece in text for text in texts), piece
            assert not any(problem in piece for problem in test_problems)


def test_prune_config_calibrates_on_toy_reasoning_inside_the_package(tokenizer):
    from tts_prune.study import notebook

    model = tiny_model("qwen3")
    config = PruneConfig(method="wanda", sparsity=0.5, calibration="toy-reasoning", nsamples=4, seqlen=32)
    by_name = copy.deepcopy(model)
    prune(by_name, tokenizer, config, show_progress=False)
    given = copy.deepcopy(model)
    prune(given, tokenizer, config, calibration=notebook.calibration_ids(tokenizer, "toy-reasoning", 4, 32, 0),
          show_progress=False)
    changed = 0
    for (name, a), b in zip(by_name.named_parameters(), given.parameters()):
        assert torch.equal(a, b), name  # the notebooks' windows and the pruner's are the same
        changed += int((a == 0).sum())
    assert changed > 0


def test_registry_errors_name_the_fix(tokenizer):
    with pytest.raises(ValueError, match="pass the tokenizer"):
        windows.calibration_texts("toy-reasoning")
    with pytest.raises(ValueError, match="sampling='stream' is unknown"):
        windows.register_text_source("x", windows.TextSource(lambda **_: ["a"], "stream"))
    with pytest.raises(FileNotFoundError, match="toy-reasoning"):
        windows.calibration_texts("no-such-source")
    assert windows.resolve_sampling("toy-reasoning") == "packed" and windows.resolve_sampling("builtin") == "document"
    assert windows.resolve_sampling("shortgpt") == "samples"
