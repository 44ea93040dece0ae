"""Accuracy with bootstrap confidence intervals, majority voting, and paired pruned-vs-dense differences.

Accuracy is pass@1 averaged over samples. Its 95% CI is a two-level (cluster) bootstrap: resample
problems with replacement, then each chosen problem's seeds with replacement (Efron & Tibshirani 1993;
the "problems are the unit" practice of Miller, "Adding Error Bars to Evals", arXiv 2411.00640).
The paired difference averages, per problem, pruned minus dense correctness over matched (seed, budget)
records; its CI is the same problem-level bootstrap and its p-value a two-sided sign-flip permutation test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

N_BOOT = 2000


def _matrix(group: pd.DataFrame) -> np.ndarray:
    # (problems, seeds) correctness; NaN where a problem has fewer samples.
    table = group.pivot_table(index="problem_id", columns="seed", values="correct", aggfunc="mean")
    return table.to_numpy(dtype=float)


def bootstrap_ci(matrix: np.ndarray, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """CI of the mean of ``matrix`` (problems, seeds), resampling problems then seeds within them."""
    rng = np.random.default_rng(seed)
    problems, seeds = matrix.shape
    rows = rng.integers(0, problems, size=(n_boot, problems))                 # (B, P)
    cols = rng.integers(0, seeds, size=(n_boot, problems, seeds))             # (B, P, S)
    picked = matrix[rows[..., None], cols]                                    # (B, P, S)
    means = np.nanmean(picked.reshape(n_boot, -1), axis=1)
    alpha = (1 - level) / 2
    return float(np.nanquantile(means, alpha)), float(np.nanquantile(means, 1 - alpha))


def accuracy_table(df: pd.DataFrame, by=("budget",), n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per group of ``by``: acc, ci_low, ci_high, n_problems, n_samples, mean thinking/answer tokens."""
    by = list(by)
    missing = [c for c in by + ["problem_id", "seed", "correct"] if c not in df.columns]
    if missing:
        raise ValueError(f"accuracy_table: columns {missing} are missing; the frame has {list(df.columns)}")
    rows = []
    for key, group in df.groupby(by, sort=True):
        group = group.assign(correct=group["correct"].astype(float))
        low, high = bootstrap_ci(_matrix(group), n_boot=n_boot, seed=seed)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(acc=float(group.groupby("problem_id")["correct"].mean().mean()), ci_low=low, ci_high=high,
                   n_problems=int(group["problem_id"].nunique()), n_samples=len(group))
        for column in ("thinking_tokens", "answer_tokens"):
            if column in group:
                row[column] = float(group[column].mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)


def majority_accuracy(df: pd.DataFrame, by=("budget",)) -> pd.DataFrame:
    """maj@n: per (group, problem) the most frequent ``prediction`` wins; ties go to the earliest seed."""
    by = list(by)
    out = []
    for key, group in df.sort_values("seed").groupby(by + ["problem_id"], sort=True):
        votes = group["prediction"].fillna("").astype(str)
        winner = votes.value_counts(sort=True).index[0]
        out.append((*((key,) if not isinstance(key, tuple) else key), bool(group["correct"][votes == winner].iloc[0])))
    table = pd.DataFrame(out, columns=by + ["problem_id", "maj_correct"])
    return table.groupby(by)["maj_correct"].mean().rename("maj_acc").to_frame()


def paired_difference(pruned: pd.DataFrame, dense: pd.DataFrame, on=("problem_id", "seed", "budget"),
                      n_boot: int = N_BOOT, n_perm: int = 10000, seed: int = 0) -> dict:
    """Pruned minus dense accuracy on matched records: diff, ci_low, ci_high, p_value, n (matched pairs)."""
    on = [c for c in on if c in pruned.columns and c in dense.columns]
    if "problem_id" not in on:
        raise ValueError("paired_difference needs a 'problem_id' column in both frames to pair records")
    merged = pruned[on + ["correct"]].merge(dense[on + ["correct"]], on=on, suffixes=("_p", "_d"))
    if merged.empty:
        raise ValueError(f"paired_difference: no records match on {on}; evaluate both models on the same problems")
    merged["d"] = merged["correct_p"].astype(float) - merged["correct_d"].astype(float)
    per_problem = merged.groupby("problem_id")["d"].mean().to_numpy()            # (P,)
    rng = np.random.default_rng(seed)
    boots = per_problem[rng.integers(0, len(per_problem), size=(n_boot, len(per_problem)))].mean(1)
    observed = per_problem.mean()
    # Sign flips of per-problem differences: the null "pruning changes nothing" makes each sign equally likely.
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(per_problem)))
    null = np.abs((signs * per_problem).mean(1))
    p_value = (1 + np.sum(null >= abs(observed) - 1e-12)) / (n_perm + 1)
    return {"diff": float(observed), "ci_low": float(np.quantile(boots, 0.025)),
            "ci_high": float(np.quantile(boots, 0.975)), "p_value": float(p_value), "n": int(len(merged))}
