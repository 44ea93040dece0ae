"""Toy reasoner pipeline: generator, tokenizer, template, training, save/reload, budget-forced decode.

Trains only ``ToyConfig.tiny()`` variants (seconds); the real recipe is exercised by ``make model``.
"""
from __future__ import annotations

import re

import pytest
import torch

from tts_prune.models import toy, toy_task
from tts_prune.tts import toy_reasoner


@pytest.fixture(scope="module")
def tokenizer():
    return toy.build_tokenizer()


@pytest.fixture(scope="module")
def trained(tokenizer):
    torch.manual_seed(0)
    config = toy.tiny_variant(steps=40)
    model = toy.build_model(config, tokenizer)
    losses = toy.train(model, tokenizer, config, show_progress=False)
    return model, losses


def test_generator_is_deterministic_and_correct():
    a = toy_task.make_problems(50, seed=3, split="train")
    assert a == toy_task.make_problems(50, seed=3, split="train")
    assert a != toy_task.make_problems(50, seed=4, split="train")
    for p in a:
        digits = [int(d) for d in re.findall(r"[A-Z](\d)", p["problem"])]  # independent parse of the text
        assert len(digits) == p["items"] and str(sum(digits)) == p["answer"]
        lines = p["thinking"].split("\n")
        assert len(lines) == p["items"] and lines[-1].endswith(f"={p['answer']}")
    lengths = [len(p["thinking"]) for p in toy_task.make_problems(300, seed=0, split="test")]
    assert min(lengths) <= 16 and max(lengths) >= 150  # thinking spans a few to ~200 tokens


def test_train_and_test_never_overlap():
    train = toy_task.make_problems(3000, seed=0, split="train")
    test = toy_task.make_problems(1000, seed=0, split="test")
    assert not {p["problem"] for p in train} & {p["problem"] for p in test}
    assert all(toy_task.split_of(p["problem"]) == "test" for p in test)
    assert all(toy_task.split_of(p["problem"]) == "train" for p in train)
    # the split is a property of the text alone: about 10% of random texts are test
    texts = [toy_task.problem_text([i % 10, i // 10 % 10, i // 100]) for i in range(1000)]
    assert 0.05 < sum(toy_task.split_of(t) == "test" for t in texts) / 1000 < 0.15


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split 'dev'"):
        toy_task.make_problems(1, seed=0, split="dev")
    with pytest.raises(ValueError, match="max_items <= 26"):
        toy_task.make_problems(1, seed=0, max_items=30)


def test_tokenizer_round_trip_and_specials(tokenizer):
    text = "Sum the digits: A7 B3\nA+7=7 {x} \\boxed{10}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # character level
    assert tokenizer.decode(ids) == text
    for special in toy.SPECIAL_TOKENS:
        assert len(tokenizer(special, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.eos_token == toy.IM_END and tokenizer.pad_token == toy.PAD


def test_chat_template_renders_think(tokenizer):
    full = toy.render(tokenizer, "Sum the digits: A2 B5", "A+2=2\nB+5=7", "7")
    assert full == ("<|im_start|>user\nSum the digits: A2 B5<|im_end|>\n<|im_start|>assistant\n"
                    "<think>\nA+2=2\nB+5=7\n</think>\n\n\\boxed{7}<|im_end|>\n")
    assert toy.render(tokenizer, "q").endswith("<|im_start|>assistant\n")


def test_training_example_masks(tokenizer):
    problem = toy_task.make_problems(1, seed=0, split="train", min_items=5, max_items=5)[0]
    ids, labels = toy.training_example(tokenizer, problem, None)
    supervised = tokenizer.decode([t for t in labels if t != -100])
    assert supervised.startswith("<think>\n") and supervised.endswith(f"\\boxed{{{problem['answer']}}}<|im_end|>")
    lines = problem["thinking"].split("\n")
    cut = len(lines[0]) + len(lines[1]) + 3  # inside the third line
    ids, labels = toy.training_example(tokenizer, problem, cut)
    expected = lines[1].split("=")[1]  # last complete running total
    assert tokenizer.decode([t for t in labels if t != -100]) == f"\\boxed{{{expected}}}<|im_end|>"
    assert tokenizer.decode(ids).count("</think>") == 1
    assert toy._last_total("A+3") == "0" and toy._last_total("A+3=3\nB+4=7\nC+") == "7"


def test_training_reduces_loss(trained):
    _, losses = trained
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_training_is_deterministic(tokenizer):
    config = toy.tiny_variant(steps=5)
    runs = []
    for _ in range(2):
        torch.manual_seed(config.seed)
        runs.append(toy.train(toy.build_model(config, tokenizer), tokenizer, config, show_progress=False))
    assert runs[0] == runs[1]


def test_batched_budget_decode_matches_single(trained, tokenizer):
    model, _ = trained
    problems = toy_task.make_problems(4, seed=0, split="test")
    batched = [g.answer for g in toy_reasoner.budget_generations(model, tokenizer, problems, (6,), batch_size=4,
                                                          show_progress=False)]
    single = [toy_reasoner.budget_generations(model, tokenizer, [p], (6,), batch_size=1, show_progress=False)[0].answer
              for p in problems]
    assert batched == single  # left padding does not change greedy results


def test_budget_accuracy_grades_boxed_answers(tokenizer, monkeypatch):
    problems = [{"problem": "Sum the digits: A1", "answer": "1"}, {"problem": "Sum the digits: A2", "answer": "2"}]
    from tts_prune.tts.generation import Generation

    answers = {8: ["\\boxed{1}", "\\boxed{3}"], 16: ["\\boxed{1}", " \\boxed{ 2 }"]}

    def fake(model, tokenizer, problems, budgets, show_progress=True):
        return [Generation(i, 0, b, "", answers[b][i], 0, 0, True, 0) for b in budgets for i in range(len(problems))]

    monkeypatch.setattr(toy_reasoner, "budget_generations", fake)
    assert toy_reasoner.budget_accuracy(None, tokenizer, problems, (8, 16), show_progress=False) == {8: 0.5, 16: 1.0}


def test_save_and_reload_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = toy.tiny_variant(steps=5, eval_problems=4)
    target = toy_reasoner.train_toy_reasoner(tmp_path / "toy", config, show_progress=False)
    model = AutoModelForCausalLM.from_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert tokenizer.decode(tokenizer("A+1=1")["input_ids"], skip_special_tokens=True) == "A+1=1"
    assert "<think>" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": toy.assistant_text("t", "1")}], tokenize=False)
    card = (target / "README.md").read_text()
    assert "not a\ngeneral LLM" in card and "| accuracy |" in card
    accuracy = toy_reasoner.budget_accuracy(model, tokenizer, toy_task.make_problems(3, seed=0), (4,), show_progress=False)
    assert set(accuracy) == {4} and 0.0 <= accuracy[4] <= 1.0


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="hidden_size=100 must be divisible by num_heads=3"):
        toy.ToyConfig(hidden_size=100, num_heads=3)
    with pytest.raises(ValueError, match="truncated_fraction=1.5"):
        toy.ToyConfig(truncated_fraction=1.5)
