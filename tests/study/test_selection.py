"""Held-out selection of allocation hyper-parameters: the search, the choice, and validation-only scoring."""
import pytest
import torch

from tests.conftest import tiny_model
from tts_prune.models.toy import build_tokenizer
from tts_prune.pruning.driver import PruneConfig
from tts_prune.study import selection
from tts_prune.tts.benchmarks import load_benchmark
from tts_prune.tts.formats import FORMATS, build_prompt
from tts_prune.tts.results import ResultStore
from tts_prune.tts.benchmarks import split_problems


def test_candidates_follow_the_allocation():
    search = {"owl_lambda": [0.04, 0.08], "owl_m": [3, 5], "layerif_eps": [0.1]}
    assert selection.candidates("owl", search) == [{"owl_lambda": 0.04, "owl_m": 3}, {"owl_lambda": 0.04, "owl_m": 5},
                                                   {"owl_lambda": 0.08, "owl_m": 3}, {"owl_lambda": 0.08, "owl_m": 5}]
    assert selection.candidates("layerif-block", search) == [{"layerif_eps": 0.1}]
    assert selection.candidates("layerif", search) == []  # the paper's LayerIF: the authors' constants
    assert selection.candidates("uniform", search) == []
    with pytest.raises(ValueError, match="seqlen"):
        selection.candidates("owl", {"seqlen": [1]})
    with pytest.raises(ValueError, match="non-empty list"):
        selection.candidates("owl", {"owl_m": 5})


def test_select_takes_the_best_candidate_first_on_ties_and_skips_invalid():
    tokenizer, model = build_tokenizer(), tiny_model("qwen3")
    ids = torch.randint(6, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    config = PruneConfig(method="magnitude", sparsity=0.1, allocation="owl")
    seen = []

    def score(pruned, candidate):  # an independent, known score: the test fixes which candidate must win
        seen.append(candidate)
        assert pruned is not model  # a fresh copy is pruned, never the dense model
        return {3: 0.5, 5: 0.7, 7: 0.7}[candidate["owl_m"]]

    chosen, table = selection.select(model, tokenizer, config, {"owl_lambda": [0.05, 0.5], "owl_m": [3, 5, 7]}, ids,
                                     score)
    assert chosen == {"owl_lambda": 0.05, "owl_m": 5}  # 0.7 ties between M=5 and M=7: the first declared wins
    assert len(table) == 6 and table["valid"].tolist() == [True] * 3 + [False] * 3  # 0.1 + 2 x 0.5 >= 1: OWL ratios would leave [0, 1)
    assert table["error"].iloc[-1].startswith("PruneConfig") and len(seen) == 3
    assert table["chosen"].sum() == 1
    dense_weight = model.model.layers[0].mlp.up_proj.weight
    assert (dense_weight != 0).all()  # the dense model is untouched


def test_validation_scorer_only_sees_validation_problems(tmp_path):
    tokenizer, model = build_tokenizer(), tiny_model("qwen3")
    score = selection.validation_scorer(tokenizer, "toy-reasoning", budget=4, limit=3, store=tmp_path, model_name="t",
                                        answer_tokens=8)
    accuracy = score(model, {"owl_m": 5})
    records = ResultStore(tmp_path).records()
    assert accuracy == pytest.approx(sum(r["correct"] for r in records) / 3)
    assert {r["problem_id"] for r in records} == {p["id"] for p in split_problems("toy-reasoning", "validation", 3)}
    test = {build_prompt(tokenizer, p["problem"], FORMATS["toy"]) for p in load_benchmark("toy-reasoning", 200)}
    assert len({r["prompt"] for r in records}) == 3 and not {r["prompt"] for r in records} & test
    assert all(r["recipe"] == {"purpose": "selection", "owl_m": 5} for r in records)


def test_alphapruning_candidates_change_the_pruned_model():
    # The search key of AlphaPruning is alpha_eps (what allocation.py reads); with layerif_eps every
    # candidate pruned the same model and the "choice" was a coin toss among identical scores.
    assert selection.candidates("alphapruning", {"alpha_eps": [0.1, 0.4], "layerif_eps": [0.2]}) == [
        {"alpha_eps": 0.1}, {"alpha_eps": 0.4}]
    tokenizer, model = build_tokenizer(), tiny_model("qwen3")
    ids = torch.randint(6, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    config = PruneConfig(method="magnitude", sparsity=0.5, allocation="alphapruning")
    sparsity_per_block = {}

    def score(pruned, candidate):
        # independent of the driver: count zeros per decoder block of the pruned copy
        sparsity_per_block[candidate["alpha_eps"]] = [
            float(sum((p == 0).sum() for n, p in layer.named_parameters() if n.endswith("proj.weight"))
                  / sum(p.numel() for n, p in layer.named_parameters() if n.endswith("proj.weight")))
            for layer in pruned.model.layers]
        return 0.0

    selection.select(model, tokenizer, config, {"alpha_eps": [0.1, 0.4]}, ids, score)
    narrow, wide = sparsity_per_block[0.1], sparsity_per_block[0.4]
    assert max(abs(a - b) for a, b in zip(narrow, wide)) > 0.02  # the candidates prune different models
    assert max(wide) - min(wide) > max(narrow) - min(narrow)  # a larger eps spreads the block sparsities wider
