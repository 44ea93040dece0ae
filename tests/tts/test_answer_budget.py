"""The answer budget's default: explicit > the model card (embedded, or a pruned copy of one) > format > s1."""
import dataclasses
import json

import pytest
import torch

from tests._helpers_eval import toy_pair
from tts_prune.models import embedded
from tts_prune.models.cards import card_answer_tokens, embedded_name
from tts_prune.tts.answer_budget import resolve_answer_tokens
from tts_prune.tts.evaluation import evaluate
from tts_prune.tts.formats import FORMATS
from tts_prune.tts.generation import DEFAULT_ANSWER_TOKENS

torch.set_num_threads(1)


@pytest.fixture
def odd_card(monkeypatch):
    """SmolLM2's card with an answer budget no format or default has, so the test sees where a value came from."""
    entry = dataclasses.replace(embedded.EMBEDDED["smollm2-135m-instruct"], answer_tokens=7)
    monkeypatch.setitem(embedded.EMBEDDED, "smollm2-135m-instruct", entry)
    return 7


def pruned_copy(folder, source):
    folder.mkdir(parents=True)
    (folder / "pruning_recipe.json").write_text(json.dumps({"method": "wanda", "source_model": str(source)}))
    return folder


def test_explicit_values_win_and_carry_no_source(odd_card):
    assert resolve_answer_tokens(48, FORMATS["toy"], "smollm2-135m-instruct") == (48, None)
    assert resolve_answer_tokens(None, FORMATS["toy"], "smollm2-135m-instruct") == (None, None)


def test_card_by_name_directory_and_pruned_copies(odd_card, tmp_path):
    loaded_from = tmp_path / "models" / "embedded" / "smollm2-135m-instruct"  # a loaded model's _name_or_path
    once = pruned_copy(tmp_path / "pruned" / "w20", loaded_from)
    twice = pruned_copy(tmp_path / "pruned" / "w20-again", once)
    for reference in ("smollm2-135m-instruct", loaded_from, once, twice):
        assert embedded_name(reference) == "smollm2-135m-instruct"
        assert resolve_answer_tokens("auto", FORMATS["qwen3"], reference) == (odd_card, "card:smollm2-135m-instruct")
    # the first reference with a card wins; a name that is no embedded model is skipped
    assert card_answer_tokens("my-model", None, once) == (odd_card, "smollm2-135m-instruct")


def test_no_card_falls_to_the_format_then_to_s1(tmp_path):
    other = pruned_copy(tmp_path / "pruned" / "hub", "Qwen/Qwen3-8B")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pruning_recipe.json").write_text("{not json")
    for reference in ("Qwen/Qwen3-8B", other, tmp_path / "broken", tmp_path / "embedded" / "not-a-model", None):
        assert embedded_name(reference) is None
    assert resolve_answer_tokens("auto", FORMATS["toy"], "tiny") == (32, "format:toy")
    assert resolve_answer_tokens("auto", FORMATS["s1"], other) == (DEFAULT_ANSWER_TOKENS, "s1-default")
    assert DEFAULT_ANSWER_TOKENS == 4096  # s1's thousands for reasoning models


def test_every_embedded_model_states_a_short_answer_budget():
    from tts_prune.tts import toy_reasoner

    assert {n: e.answer_tokens for n, e in embedded.EMBEDDED.items()} == {
        "smollm2-135m-instruct": 32, "qwen2.5-coder-0.5b-instruct": 32, "toy-reasoner": 32}
    assert toy_reasoner.ANSWER_TOKENS == 32  # the trainer's own check reads the card


def test_bad_value_names_what_is_allowed():
    with pytest.raises(ValueError, match=r"answer_tokens='many'.*int >= 1.*None.*'auto'"):
        resolve_answer_tokens("many", FORMATS["toy"], "tiny")


def test_evaluate_records_the_resolved_budget_and_explicit_records_are_unchanged(tmp_path):
    pair = toy_pair(seed=0, logit_scale=40.0)
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"{i}+{i}=?", "answer": str(2 * i)}) + "\n"
                            for i in range(2)))
    common = dict(model_name="tiny", thinking_format="toy", show_progress=False)
    explicit = evaluate(pair, str(data), [3], answer_tokens=32, out=tmp_path / "a", **common)
    auto = evaluate(pair, str(data), [3], out=tmp_path / "b", **common)
    assert "answer_budget" not in explicit.columns and "answer_budget_source" not in explicit.columns
    assert (auto["answer_budget"] == 32).all() and (auto["answer_budget_source"] == "format:toy").all()
    assert [d["answer_tokens"] for d in auto["decoding"]] == [32, 32]
    # the same request: same keys and texts; only the two provenance fields are added (and timings differ)
    assert list(auto["key"]) == list(explicit["key"])
    timing = ["batch_seconds"]
    assert auto.drop(columns=["answer_budget", "answer_budget_source", *timing]).equals(explicit.drop(columns=timing))
