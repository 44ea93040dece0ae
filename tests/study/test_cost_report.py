"""Accuracy against cost: per-record costs from cost records, and the equal-accuracy table on curves with known answers."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from tts_prune.report.cost import (accuracy_at_cost, accuracy_vs_cost, cost_at_accuracy, cost_curves, cost_table,
                                   equal_accuracy, problem_costs)

CURVE = [(0.2, 8.0), (0.4, 16.0), (0.6, 32.0), (0.8, 64.0)]  # (accuracy, cost) in budget order


@pytest.mark.parametrize("target, cost, how", [(0.3, 12.0, "interpolated"), (0.5, 24.0, "interpolated"),
                                               (0.8, 64.0, "interpolated"), (0.1, 8.0, "reached at its smallest"),
                                               (0.9, math.nan, "never reaches")])
def test_cost_at_accuracy(target, cost, how):
    got, note = cost_at_accuracy(CURVE, target)
    assert (math.isnan(got) and math.isnan(cost)) or got == pytest.approx(cost)
    assert note.startswith(how)


@pytest.mark.parametrize("paid, acc, how", [(10.0, 0.25, "interpolated"), (30.0, 0.575, "interpolated"),
                                            (4.0, math.nan, "its smallest budget costs more"),
                                            (65.0, math.nan, "beyond its largest budget")])
def test_accuracy_at_cost(paid, acc, how):
    got, note = accuracy_at_cost(CURVE, paid)
    assert (math.isnan(got) and math.isnan(acc)) or got == pytest.approx(acc)
    assert note == how


def test_a_curve_that_dips_is_read_at_its_first_crossing():
    assert cost_at_accuracy([(0.1, 1.0), (0.5, 2.0), (0.3, 3.0), (0.6, 4.0)], 0.4)[0] == pytest.approx(1.75)


def _curves() -> pd.DataFrame:
    dense = pd.DataFrame({"run": "dense", "budget": [1, 2, 3], "acc": [0.3, 0.5, 0.7], "seconds": [10.0, 20.0, 30.0]})
    pruned = pd.DataFrame({"run": "wanda/uniform/0.2", "budget": [1, 2, 3, 4], "acc": [a for a, _ in CURVE],
                           "seconds": [c for _, c in CURVE]})
    worse = pd.DataFrame({"run": "shortgpt/-2L", "budget": [1, 2], "acc": [0.1, 0.35], "seconds": [5.0, 9.0]})
    return pd.concat([dense, pruned, worse]).assign(model="m", benchmark="b")


def test_equal_accuracy_table_on_known_curves():
    table = equal_accuracy(_curves(), cost="seconds").set_index(["run", "dense_budget"])
    wanda = table.loc["wanda/uniform/0.2"]
    assert list(wanda["seconds_at_dense_acc"]) == pytest.approx([12.0, 24.0, 48.0])
    assert list(wanda["seconds_ratio"]) == pytest.approx([1.2, 1.2, 1.6])
    assert list(wanda["acc_at_dense_seconds"]) == pytest.approx([0.25, 0.45, 0.575])
    assert list(wanda["acc_delta_at_dense_seconds"]) == pytest.approx([-0.05, -0.05, -0.125])
    short = table.loc["shortgpt/-2L"]
    assert short["seconds_at_dense_acc"].iloc[0] == pytest.approx(5 + (0.2 / 0.25) * 4)
    assert list(short["reach_by_seconds"].iloc[1:]) == ["never reaches"] * 2
    assert list(short["at_dense_seconds"]) == ["beyond its largest budget"] * 3
    assert list(equal_accuracy(_curves().assign(flops=lambda f: f["seconds"] * 1e9), cost="flops")
                .set_index(["run", "dense_budget"]).loc["wanda/uniform/0.2", "flops_ratio"]) == pytest.approx([1.2, 1.2, 1.6])
    with pytest.raises(ValueError, match="cost='watts' is not a cost column"):
        equal_accuracy(_curves(), cost="watts")


COST = {"model_hash": "h1", "backend": "transformers", "device": "cpu:x86_64 x1 threads", "evaluation_batch": 4,
        "measured_at": "2026-12-02T01:00:00Z", "flops_per_token_at_probe_context": 3e6,
        "flops": {"linear": 1000, "nonzero_linear": 800, "attention_per_context": 10, "blocks": 2, "heads": 2,
                  "head_dim": 4, "kv_heads": 1},
        "measurements": [{"batch_size": 1, "decode_step_s": 0.5, "decode_tokens_per_s": 2.0, "prefill_s_per_token": 1.0,
                          "peak_memory_bytes": 1, "memory_source": "x"},
                         {"batch_size": 4, "decode_step_s": 0.8, "decode_tokens_per_s": 5.0, "prefill_s_per_token": 0.01,
                          "peak_memory_bytes": 2e9, "memory_source": "analytic"}]}


def _records() -> pd.DataFrame:
    return pd.DataFrame({"model": "m", "model_hash": ["h1", "h1", "h1", "h2"], "backend": "transformers",
                         "benchmark": "b", "problem_id": [7, 7, 8, 7], "run": ["dense"] * 3 + ["x"],
                         "budget": [16, 32, 16, 16], "seed": 0, "correct": [1.0, 0.0, 1.0, 0.0],
                         "thinking_tokens": [10, 20, 16, 16], "answer_tokens": [5, 5, 4, 4]})


def test_problem_costs_from_the_evaluation_batch_and_the_stored_prompt_lengths():
    lengths = [{"model_hash": "h1", "benchmark": "b", "problem_id": "7", "prompt_tokens": 100},
               {"model_hash": "h2", "benchmark": "b", "problem_id": "7", "prompt_tokens": 100}]
    df = problem_costs(_records(), [COST], lengths)
    first = df.iloc[0]  # prompt 100, generated 15, at batch 4: 100 x 0.01 s + 15 tokens / 5 tok/s
    assert first["generated_tokens"] == 15 and first["seconds"] == pytest.approx(1.0 + 3.0)
    assert first["flops"] == 1000 * 115 + 10 * 115 * 116 / 2
    assert math.isnan(df.iloc[2]["seconds"])  # problem 8's prompt length is not stored: no guessed prefill
    assert math.isnan(df.iloc[3]["flops"])  # weights h2 have no cost record
    table = cost_table([COST])
    assert table["decode_tokens_per_s"].tolist() == [5.0] and table["peak_memory_gb"].tolist() == [2.0]
    with pytest.raises(ValueError, match="several devices"):
        problem_costs(_records(), [COST, {**COST, "device": "cuda:H200"}], lengths)


def test_cost_curves_and_their_figure():
    lengths = [{"model_hash": "h1", "benchmark": "b", "problem_id": p, "prompt_tokens": 100} for p in ("7", "8")]
    curves = cost_curves(problem_costs(_records(), [COST], lengths))
    dense16 = curves[(curves["run"] == "dense") & (curves["budget"] == 16)].iloc[0]
    assert dense16["acc"] == 1.0 and dense16["tokens"] == pytest.approx((15 + 20) / 2)
    assert dense16["tokens_per_correct"] == pytest.approx(35 / 2)
    assert math.isnan(curves[(curves["run"] == "dense") & (curves["budget"] == 32)]["tokens_per_correct"].iloc[0])
    fig = accuracy_vs_cost(curves, title="m · b")
    assert [len(ax.lines) for ax in fig.axes] == [2, 1, 1]  # run x has tokens but no cost record
    (dense_line,) = [line for line in fig.axes[2].lines if line.get_label() == "dense"]
    assert list(dense_line.get_xdata()) == pytest.approx(
        [curves[(curves["run"] == "dense") & (curves["budget"] == b)]["seconds"].iloc[0] for b in (16, 32)])


def test_main_device_is_the_one_most_records_came_from():
    from tts_prune.report.cost import main_device

    gpu = {**COST, "key": "g", "device": "cuda:H200", "measured_at": "2026-12-03T00:00:00Z"}
    cpu = [{**COST, "key": k} for k in ("c1", "c2")]
    assert main_device([gpu, *cpu]) == COST["device"] and main_device([gpu, cpu[0]]) == "cuda:H200"
    assert main_device([]) is None
