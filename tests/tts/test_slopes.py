"""Scaling-slope fits against a direct record-level likelihood and simulated runs with known curves."""
import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy.special import expit

from tts_prune.tts import slopes

BUDGETS = [8, 16, 32, 64, 128, 256]


def _run(rng, run, intercept, slope, ceiling, problems=60, seeds=3, model="toy"):
    x = np.log2(BUDGETS) - np.log2(BUDGETS).mean()
    p = ceiling * expit(intercept + slope * x)                                      # (budgets,)
    grades = rng.random((problems, seeds, len(BUDGETS))) < p[None, None, :]
    index = pd.MultiIndex.from_product([[f"q{i:03d}" for i in range(problems)], range(seeds), BUDGETS],
                                       names=["problem_id", "seed", "budget"])
    frame = pd.DataFrame({"correct": grades.reshape(-1).astype(float)}, index=index).reset_index()
    return frame.assign(run=run, method=run.split("/")[0], model=model, benchmark="toy-reasoning")


def test_fit_matches_a_direct_record_level_maximum_likelihood():
    rng = np.random.default_rng(0)
    df = _run(rng, "dense", 0.3, 0.9, 0.8, problems=40)
    row = slopes.scaling_slopes(df, n_boot=20).iloc[0]
    x = np.log2(df["budget"].to_numpy(float)) - np.log2(BUDGETS).mean()
    y = df["correct"].to_numpy()

    def nll(t):  # one term per record, no aggregation, derivative-free
        p = np.clip(expit(t[2]) * expit(t[0] + t[1] * x), 1e-12, 1 - 1e-12)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum()

    direct = optimize.minimize(nll, [0.0, 0.5, 2.0], method="Nelder-Mead",
                               options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000}).x
    assert row["slope"] == pytest.approx(direct[1], abs=2e-3)
    assert row["ceiling"] == pytest.approx(expit(direct[2]), abs=2e-3)
    assert row["level"] == pytest.approx(expit(direct[2]) * expit(direct[0]), abs=2e-3)
    assert slopes.curve(row, [row["reference_budget"]])[0] == pytest.approx(row["level"])


def test_known_slope_change_is_recovered_with_covering_intervals():
    rng = np.random.default_rng(1)
    true_d_slope, true_d_level = -0.5, expit(0.0) * 0.85 - expit(0.0) * 0.85
    estimates, covered_slope, covered_level, rejected = [], [], [], []
    for _ in range(100):
        df = pd.concat([_run(rng, "dense", 0.0, 1.2, 0.85), _run(rng, "wanda/owl/0.5", 0.0, 0.7, 0.85)])
        test = slopes.slope_tests(df, n_boot=150).iloc[0]
        estimates.append(test["d_slope"])
        covered_slope.append(test["d_slope_low"] <= true_d_slope <= test["d_slope_high"])
        covered_level.append(test["d_level_low"] <= true_d_level <= test["d_level_high"])
        rejected.append(test["p_slope"] < 0.05)
    assert np.median(estimates) == pytest.approx(true_d_slope, abs=0.1)
    assert 0.88 <= np.mean(covered_slope) <= 0.99 and 0.88 <= np.mean(covered_level) <= 0.99
    assert np.mean(rejected) > 0.6  # a real slope change is found most of the time


def test_level_change_without_slope_change_is_not_called_a_slope_change():
    rng = np.random.default_rng(2)
    p_slope, p_level = [], []
    for _ in range(40):
        df = pd.concat([_run(rng, "dense", 0.5, 1.0, 0.9), _run(rng, "magnitude/uniform/0.5", -0.5, 1.0, 0.9)])
        test = slopes.slope_tests(df, n_boot=150).iloc[0]
        p_slope.append(test["p_slope"])
        p_level.append(test["p_level"])
    assert np.mean(np.array(p_slope) < 0.05) <= 0.12
    assert np.mean(np.array(p_level) < 0.05) >= 0.8


def test_two_budgets_fix_the_ceiling_and_one_budget_is_skipped():
    rng = np.random.default_rng(3)
    df = _run(rng, "dense", 0.0, 1.0, 1.0)
    two = slopes.scaling_slopes(df[df["budget"].isin([8, 64])], n_boot=20).iloc[0]
    assert not two["ceiling_fitted"] and two["ceiling"] == pytest.approx(1.0)
    assert slopes.scaling_slopes(df[df["budget"] == 8], n_boot=20).empty
    with pytest.raises(ValueError, match="explorer.runs"):
        slopes.scaling_slopes(df.drop(columns=["run"]))
