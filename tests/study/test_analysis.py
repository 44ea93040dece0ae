"""05-report's analyses on hand-made records: pairing with the dense baseline, KL joins, calibration tables."""
import json

import numpy as np
import pandas as pd
import pytest

from tts_prune.report import analysis, explorer


def rec(method, problem, correct, tokens, calibration="gsm8k", calibration_seed=0, budget=8, seed=0):
    recipe = {"method": method, "allocation": "uniform", "sparsity": 0.0 if method == "dense" else 0.2}
    if method != "dense":
        recipe.update(calibration=calibration, calibration_seed=calibration_seed)
    return {"model": "m", "benchmark": "b", "recipe": recipe, "problem_id": problem, "seed": seed, "budget": budget,
            "correct": correct, "thinking_tokens": tokens, "answer_tokens": 1, "capped": False, "prediction": "1"}


def test_overthinking_pairs_each_pruned_run_with_its_dense_baseline():
    rows = [rec("dense", "p0", True, 10), rec("dense", "p1", True, 20), rec("dense", "p2", False, 5),
            rec("wanda", "p0", True, 14), rec("wanda", "p1", True, 30), rec("wanda", "p2", True, 99),
            rec("magnitude", "p0", False, 1), rec("magnitude", "p1", False, 1), rec("magnitude", "p2", False, 1)]
    table = analysis.overthinking_vs_dense(explorer.runs(pd.DataFrame(rows)), n_perm=200)
    assert table["run"].tolist() == ["wanda/uniform/0.2"]  # magnitude is never correct where dense is
    assert table.loc[0, "diff"] == pytest.approx((4 + 10) / 2) and table.loc[0, "n"] == 2


def test_divergence_joins_kl_to_the_paired_accuracy_change(tmp_path):
    rows = [rec("dense", f"p{i}", True, 10) for i in range(4)] + [rec("wanda", f"p{i}", i < 2, 10) for i in range(4)]
    df = explorer.runs(pd.DataFrame(rows))
    for seed, kl in [(0, 0.1), (1, 0.3)]:  # two calibration seeds of one run: their KL is averaged
        folder = tmp_path / "04-tts-scaling" / f"s{seed}"
        folder.mkdir(parents=True)
        (folder / "divergence.json").write_text(json.dumps({"model": "m", "benchmark": "b", "method": "wanda",
                                                            "allocation": "uniform", "sparsity": 0.2,
                                                            "calibration": "gsm8k", "kl_mean": kl}))
    paired = explorer.paired_vs_dense(df)
    table = analysis.divergence_vs_dense(df, analysis.read_divergences(tmp_path), paired)
    assert len(table) == 1 and table.loc[0, "kl_mean"] == pytest.approx(0.2) and table.loc[0, "diff"] == -0.5


def test_calibration_tables():
    rows = [rec("dense", "p0", True, 1)]
    for cal, cs, flags in [("gsm8k", 0, [1, 0, 0, 0]), ("gsm8k", 1, [1, 1, 0, 0]), ("self-traces", 0, [1, 1, 1, 0])]:
        rows += [rec("wanda", f"p{i}", bool(f), 5, cal, cs) for i, f in enumerate(flags)]
    df = explorer.runs(pd.DataFrame(rows))
    comparison = analysis.calibration_comparison(df).set_index("calibration")
    assert comparison.loc["gsm8k", "acc"] == pytest.approx((0.25 + 0.5) / 2)
    assert comparison.loc["self-traces", "acc"] == pytest.approx(0.75)
    # paired on (problem, seed, budget): gsm8k's two calibration seeds both pair with the self-traces record
    per_problem = np.array([0, 0.5, 1, 0])
    assert comparison.loc["self-traces", "delta"] == pytest.approx(per_problem.mean())
    spread = analysis.calibration_seed_spread(df).set_index("run")
    gsm = spread.loc["wanda/uniform/0.2/gsm8k"]
    assert gsm["calibration_seeds"] == 2 and gsm["acc_mean"] == pytest.approx(0.375)
    assert gsm["acc_std"] == pytest.approx(np.std([0.25, 0.5], ddof=1))
    assert analysis.calibration_seed_spread(df[df["calibration_seed"] == 0]).empty
