"""04 measures each model variant's cost on its engine and stores it beside the records; 04 and 05 draw accuracy
against cost and write the equal-accuracy table (smoke study, tiny model)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests._helpers_study import smoke_run
from tts_prune.tts.cost import load_costs, load_prompt_tokens
from tts_prune.tts.flops import TokenFlops


@pytest.fixture(scope="module")
def smoke():
    return smoke_run()


def test_04_stores_one_cost_record_per_variant_beside_the_records(smoke):
    import tts_prune

    evaluated = [c for c in smoke["cells"] if c.notebook == "04-tts-scaling"]
    store = Path(evaluated[0].parameters["results_dir"])
    records = tts_prune.load_results(store)
    costs = load_costs(store / "cost")
    assert {c["model_hash"] for c in costs} == set(records["model_hash"])  # every variant measured, nothing else
    assert len(costs) == len(evaluated) and {c["backend"] for c in costs} == {"transformers"}
    for cost in costs:
        (row,) = cost["measurements"]
        assert cost["evaluation_batch"] == row["batch_size"] == evaluated[0].parameters.get("batch_size", 16)  # 04's default
        assert row["decode_step_s"] > 0 and row["decode_tokens_per_s"] == pytest.approx(
            row["batch_size"] / row["decode_step_s"])
    lengths = pd.DataFrame(load_prompt_tokens(store / "cost"))
    assert set(zip(lengths["model_hash"], lengths["benchmark"], lengths["problem_id"])) == set(
        zip(records["model_hash"], records["benchmark"], records["problem_id"].astype(str)))


def test_04_and_05_draw_accuracy_against_cost_and_the_equal_accuracy_table(smoke):
    for cell in [c for c in smoke["cells"] if c.notebook == "04-tts-scaling"]:
        curves = pd.read_csv(Path(cell.parameters["artifacts_dir"]) / "cost_curves.csv")
        assert (curves["seconds"] > 0).all() and (curves["flops"] > 0).all()
        for name in curves["benchmark"].unique():
            assert (Path(cell.parameters["figures_dir"]) / name / "accuracy_vs_cost.png").exists()
    (report,) = [c for c in smoke["cells"] if c.notebook == "05-report"]
    figures = Path(report.parameters["figures_dir"])
    curves = pd.read_csv(figures / "cost_curves.csv")
    store = Path(report.parameters["results_dir"])
    costs = {c["model_hash"]: c for c in load_costs(store / "cost")}
    assert curves["seconds"].notna().all() and set(curves["run"]) >= {"dense"} and len(set(curves["run"])) > 1
    # FLOPs per problem >= the linears' work on the generated tokens alone (prompt and attention add to it)
    import tts_prune

    records = tts_prune.load_results(store)
    linear = records["model_hash"].map(lambda h: TokenFlops(**costs[h]["flops"]).linear)
    assert (curves["flops"].sum() > (linear * (records["thinking_tokens"] + records["answer_tokens"])).mean())
    table = pd.read_csv(figures / "equal_accuracy_cost.csv")
    assert len(table) == (len(set(curves["run"])) - 1) * curves.loc[curves["run"] == "dense", "budget"].nunique() * \
        curves["benchmark"].nunique()
    assert {"seconds_at_dense_acc", "flops_at_dense_acc", "acc_at_dense_seconds"} <= set(table.columns)
    assert any(figures.glob("accuracy_vs_cost__*.png"))
