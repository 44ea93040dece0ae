"""The self-traces calibration source: the dense model's own traces on training problems, via the evaluator."""
import pytest
import torch

from tests.conftest import tiny_model
from tts_prune.models.toy import build_tokenizer
from tts_prune.study import notebook
from tts_prune.study.self_traces import self_trace_texts
from tts_prune.tts.benchmarks import load_benchmark
from tts_prune.tts.formats import FORMATS, build_prompt
from tts_prune.tts.results import ResultStore
from tts_prune.tts.benchmarks import split_problems


def test_self_traces_are_the_models_own_traces_on_training_problems(tmp_path):
    tokenizer, model = build_tokenizer(), tiny_model("qwen3")
    texts = self_trace_texts(model, tokenizer, "toy-reasoning", 4, budget=6, store=tmp_path, model_name="tiny",
                             answer_tokens=8)
    train = split_problems("toy-reasoning", "train", 4)
    records = sorted(ResultStore(tmp_path).records(), key=lambda r: r["problem_id"])
    assert sorted(r["problem_id"] for r in records) == sorted(p["id"] for p in train)
    assert not {p["problem"] for p in train} & {p["problem"] for p in load_benchmark("toy-reasoning", 200)}
    expected = {build_prompt(tokenizer, p["problem"], FORMATS["toy"]) for p in train}
    assert {r["prompt"] for r in records} == expected
    assert sorted(texts) == sorted(r["prompt"] + r["thinking"] + r["forced"] + r["answer"] for r in records)
    assert all(r["forced"].startswith(FORMATS["toy"].think_end) for r in records)  # every trace is capped here
    assert all(r["thinking_tokens"] <= 6 for r in records)
    shards = len(ResultStore(tmp_path).shards())
    self_trace_texts(model, tokenizer, "toy-reasoning", 4, budget=6, store=tmp_path, model_name="tiny", answer_tokens=8)
    assert len(ResultStore(tmp_path).shards()) == shards  # a rerun reuses the stored traces


def test_calibration_ids_windows_come_from_the_traces(tmp_path):
    tokenizer, model = build_tokenizer(), tiny_model("qwen3")
    ids = notebook.calibration_ids(tokenizer, "self-traces", 3, 12, model=model, benchmark="toy-reasoning",
                                   budget=6, store=tmp_path, model_name="tiny",
                                   evaluate_options={"answer_tokens": 8})
    assert ids.shape == (3, 12) and ids.dtype == torch.long
    texts = self_trace_texts(model, tokenizer, "toy-reasoning", 16, budget=6, store=tmp_path, model_name="tiny",
                             answer_tokens=8)
    # Short documents are packed as wanda-style corpora are not: joined by a blank line, no special tokens
    # (tts_prune.pruning.windows.packed_windows). So every window, split at the blank lines, is made of pieces
    # of the traces (the toy tokenizer is character-level: decoding gives the exact text).
    for row in ids.tolist():
        window = tokenizer.decode(row)
        for piece in filter(None, window.split("\n\n")):
            assert any(piece in text for text in texts), piece
    with pytest.raises(ValueError, match="dense model"):
        notebook.calibration_ids(tokenizer, "self-traces", 3, 12)
