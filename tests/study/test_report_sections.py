"""05-report's tables (``tts_prune.report.sections``, the provenance ``audit``), each against a hand computation."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from tests.study.test_report_stats import synthetic_store
from tts_prune.report import explorer, provenance, sections
from tts_prune.tts.metrics import token_cost_table


@pytest.fixture(scope="module")
def df(tmp_path_factory):
    return explorer.runs(synthetic_store(tmp_path_factory.mktemp("sections") / "records", problems=12, seeds=2))


def test_overview_counts_and_means(df):
    table = sections.overview(df).set_index(["model", "benchmark", "run"])
    assert len(table) == 3
    for key, part in df.groupby(["model", "benchmark", "run"]):
        row = table.loc[key]
        assert row["records"] == len(part) == 12 * 2 * 6
        assert (row["problems"], row["seeds"], row["budgets"]) == (12, 2, 6)
        assert row["accuracy"] == pytest.approx(part["correct"].astype(float).sum() / len(part))
        assert row["no_answer"] == pytest.approx(part["no_answer"].astype(float).sum() / len(part))


def test_weights_provenance_flags_a_run_generated_from_the_dense_weights(df):
    table = sections.weights_provenance(df).set_index("run")
    assert table.loc["dense", "weights"] == "hash-dense" and not table["same_weights_as_dense"].any()
    copied = df.assign(model_hash=df["model_hash"].where(~df["run"].str.startswith("wanda"), "hash-dense"))
    flagged = sections.weights_provenance(copied).set_index("run")["same_weights_as_dense"]
    assert [run for run, same in flagged.items() if same] == [r for r in flagged.index if r.startswith("wanda")]
    bare = sections.weights_provenance(df.drop(columns=["backend", "model_hash"]))
    assert set(bare["backend"]) == set(bare["weights"]) == {sections.PROVENANCE_UNRECORDED}


def test_sparsity_lines_start_at_the_dense_point(df):
    by_sparsity, lines = sections.sparsity_lines(df)
    top = df[df["budget"] == df["budget"].max()]
    for _, row in by_sparsity.iterrows():
        part = top[(top["method"] == row["method"]) & (top["allocation"] == row["allocation"])
                   & (top["sparsity"] == row["sparsity"])]
        assert row["acc"] == pytest.approx(part["correct"].astype(float).mean())
    dense_acc = top[top["method"] == "dense"]["correct"].astype(float).mean()
    assert sorted(set(lines["recipe"])) == ["magnitude/uniform", "wanda/owl"]  # one calibration source: no suffix
    for _, line in lines.groupby("recipe"):
        assert sorted(line["sparsity"]) == [0.0, 0.5]
        assert line[line["sparsity"] == 0.0]["acc"].iloc[0] == pytest.approx(dense_acc)


def test_paired_with_mdd_reads_every_test(df):
    variance = pd.DataFrame([{"model": "toy-reasoner", "benchmark": "toy-reasoning", "budget": b, "run": r, "mdd": 0.1}
                             for b in df["budget"].unique() for r in df["run"].unique() if r != "dense"])
    paired = sections.paired_with_mdd(df, variance, alpha=0.05)
    assert len(paired) == 2 * 6 and (paired["mdd"] == 0.1).all()
    for _, row in paired.iterrows():
        assert row["significant"] == (row["p_value"] < 0.05)
        assert row["reading"] == ("significant" if row["significant"] else "no significant difference (MDD 0.10)")
    assert sections.paired_with_mdd(df[df["run"] == "dense"], variance, 0.05).empty


def test_labelled_and_perplexity_table(tmp_path):
    table = pd.DataFrame({"model": ["a/b"], "benchmark": ["gsm8k"], "run": ["dense"]})
    assert sections.labelled(table, lambda m: m.replace("/", "-"))["label"].tolist() == ["a-b · gsm8k · dense"]
    assert sections.perplexity_table(tmp_path).empty
    for i, ratio in enumerate([1.5, 2.0]):
        folder = tmp_path / "03-pruning" / f"cell{i}"
        folder.mkdir(parents=True)
        (folder / "pruning.json").write_text(json.dumps({
            "model": "m", "method": "wanda", "allocation": "owl", "sparsity": 0.2, "achieved_sparsity": 0.2,
            "ppl_dense": 10.0, "ppl_pruned": 10.0 * ratio, "ppl_ratio": ratio, "pruned_fingerprint": f"f{i}"}))
    ppl = sections.perplexity_table(tmp_path)
    assert list(ppl.columns)[-1] == "ppl_ratio" and "pruned_fingerprint" not in ppl.columns
    assert ppl["ppl_ratio"].tolist() == [1.5, 2.0]


def test_token_costs_are_the_per_benchmark_tables(df):
    two = pd.concat([df, df.assign(benchmark="gsm8k")])
    costs = sections.token_costs(two, None)
    for bench in ("toy-reasoning", "gsm8k"):
        expected = token_cost_table(two[two["benchmark"] == bench], None, by=["run"])
        got = costs[costs["benchmark"] == bench].drop(columns=["model", "benchmark"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))


def test_spearman_by_budget_skips_budgets_with_two_runs():
    rng = np.random.default_rng(0)
    divergence = pd.DataFrame({"budget": [8] * 5 + [16] * 2, "kl_mean": rng.random(7), "diff": rng.random(7)})
    table = sections.spearman_by_budget(divergence)
    rho, p = spearmanr(divergence["kl_mean"][:5], divergence["diff"][:5])
    assert table["budget"].tolist() == [8]
    assert table["spearman_rho"].iloc[0] == pytest.approx(rho) and table["p_value"].iloc[0] == pytest.approx(p)


def test_audit_passes_distinct_weights_and_stops_on_unexplained_copies(df, tmp_path, capsys):
    assert provenance.audit(df, tmp_path).empty and capsys.readouterr().out == ""
    copied = df.assign(model_hash=df["model_hash"].replace({"hash-magnitude": "hash-wanda"}))
    with pytest.raises(provenance.UnexplainedWeights, match="same weights without a reason.*magnitude"):
        provenance.audit(copied, tmp_path)
    assert "WARNING: 1 pair(s) of different recipes have identical weights" in capsys.readouterr().out
