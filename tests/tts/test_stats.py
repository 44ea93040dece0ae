"""Statistics against independent computations (closed forms, scipy, exhaustive enumeration)."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tts_prune.tts.stats import accuracy_table, bootstrap_ci, majority_accuracy, paired_difference


def frame(correct, budget=8, seeds=(0,), model="m"):
    rows = []
    for p, values in enumerate(correct):
        for s, c in zip(seeds, values if isinstance(values, (list, tuple)) else [values]):
            rows.append({"problem_id": f"p{p}", "seed": s, "budget": budget, "correct": bool(c), "model": model,
                         "thinking_tokens": 10 * (p + 1), "answer_tokens": 3})
    return pd.DataFrame(rows)


def test_accuracy_is_mean_over_problems_of_mean_over_seeds():
    df = frame([[1, 0, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0]], seeds=(0, 1, 2))
    table = accuracy_table(df, by=["budget"])
    assert table.loc[8, "acc"] == pytest.approx((1 / 3 + 1 + 1 / 3 + 0) / 4)
    assert table.loc[8, "thinking_tokens"] == pytest.approx(25.0)
    assert table.loc[8, "ci_low"] <= table.loc[8, "acc"] <= table.loc[8, "ci_high"]


def test_bootstrap_ci_matches_normal_approximation_for_one_seed():
    rng = np.random.default_rng(0)
    values = (rng.random(400) < 0.3).astype(float)[:, None]
    low, high = bootstrap_ci(values, n_boot=4000)
    p, se = values.mean(), values.std() / np.sqrt(len(values))
    assert low == pytest.approx(p - 1.96 * se, abs=0.01) and high == pytest.approx(p + 1.96 * se, abs=0.01)


def test_accuracy_table_groups_and_errors():
    df = pd.concat([frame([1, 1, 0], budget=4), frame([1, 1, 1], budget=8)])
    table = accuracy_table(df, by=["budget"]).reset_index()
    assert list(table["acc"]) == pytest.approx([2 / 3, 1.0])
    with pytest.raises(ValueError, match="missing"):
        accuracy_table(df.drop(columns="seed"), by=["budget"])


def test_majority_vote():
    df = pd.DataFrame({"problem_id": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2, "budget": 8,
                       "prediction": ["5", "5", "6", "1", "2", "2"], "correct": [1, 1, 0, 1, 0, 0]})
    assert majority_accuracy(df).loc[8, "maj_acc"] == pytest.approx(0.5)


def test_paired_difference_exact_permutation_and_bootstrap():
    dense = frame([1, 1, 1, 1, 0, 1, 1, 0])
    pruned = frame([1, 0, 0, 1, 0, 0, 1, 0])
    result = paired_difference(pruned, dense, n_perm=20000)
    d = pruned["correct"].astype(float).to_numpy() - dense["correct"].astype(float).to_numpy()
    assert result["diff"] == pytest.approx(d.mean()) and result["n"] == 8
    # exact two-sided sign-flip p-value by enumerating all 2^8 sign patterns
    flips = np.array(list(itertools.product([-1, 1], repeat=8)))
    exact = np.mean(np.abs((flips * d).mean(1)) >= abs(d.mean()) - 1e-12)
    assert result["p_value"] == pytest.approx(exact, abs=0.01)
    # with 3 discordant pairs all one way the sign test gives the same p: 2 * 0.5^3
    assert exact == pytest.approx(sps.binomtest(3, 3).pvalue)
    assert result["ci_low"] <= result["diff"] <= result["ci_high"] <= 0


def test_paired_difference_needs_matches():
    with pytest.raises(ValueError, match="no records match"):
        paired_difference(frame([1]), frame([1], budget=99))


def test_majority_vote_is_over_equivalence_classes_with_random_ties():
    # "0.5" and "\frac12" are one class (2 votes) against "3" (1 vote): the class wins, whatever the strings
    df = pd.DataFrame({"problem_id": ["a"] * 3 + ["b"] * 4, "seed": [0, 1, 2, 0, 1, 2, 3], "budget": 8,
                       "benchmark": "math500", "prediction": ["0.5", "\\frac12", "3", "1", "2", None, ""],
                       "correct": [1, 1, 0, 1, 0, 0, 0]})
    # b: two one-vote classes "1" (right) and "2" (wrong), two non-votes: a tie broken uniformly, so 1/2
    assert majority_accuracy(df).loc[8, "maj_acc"] == pytest.approx((1.0 + 0.5) / 2)
    # raw strings would split a's class and elect the earliest seed's "0.5": same here, but "3" would tie in
    # a raw vote had it two spellings; the equivalence-class vote and metrics' maj@k at k = n agree
    from tts_prune.tts.metrics import parallel_table

    table = parallel_table(df.assign(run="r", thinking_tokens=1, answer_tokens=1)[df["problem_id"] == "a"], ks=[3])
    assert table["maj_at_k"].iloc[0] == pytest.approx(1.0)


def test_one_bootstrap_core_for_vectors_and_matrices():
    from tts_prune.tts import scoring

    values = np.array([0.0, 1.0, 1.0, 0.5, 0.25])
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 5, size=(300, 5))
    assert np.array_equal(scoring.bootstrap_means(values, 300, 7), values[rows].mean(axis=1))
    # a (P, 1) matrix resamples problems with the same draws as the vector, and its one seed is always taken
    assert np.allclose(scoring.bootstrap_means(values[:, None], 300, 7), values[rows].mean(axis=1))
    low, high = scoring.bootstrap_ci(values, 300, seed=7)
    means = values[rows].mean(axis=1)
    assert (low, high) == (np.quantile(means, 0.025), np.quantile(means, 0.975))
    with pytest.raises(ValueError, match="level=1.5"):
        scoring.bootstrap_ci(values, level=1.5)
