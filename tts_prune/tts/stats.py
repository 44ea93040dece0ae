"""Accuracy with bootstrap confidence intervals, majority voting, and paired pruned-vs-dense differences
(the bootstrap and the vote are the scoring core's, ``tts_prune.tts.scoring``).

Accuracy is pass@1 averaged over samples. Its 95% CI is a two-level (cluster) bootstrap: resample
problems with replacement, then each chosen problem's seeds with replacement (Efron & Tibshirani 1993;
the "problems are the unit" practice of Miller, "Adding Error Bars to Evals", arXiv 2411.00640).
The paired difference averages, per problem, pruned minus dense correctness over matched (seed, budget)
records; its CI is the same problem-level bootstrap and its p-value a two-sided sign-flip permutation test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .scoring import N_BOOT, bootstrap_ci, bootstrap_means, grader_kind, majority


def _matrix(group: pd.DataFrame) -> np.ndarray:
    # (problems, seeds) correctness; NaN where a problem has fewer samples.
    table = group.pivot_table(index="problem_id", columns="seed", values="correct", aggfunc="mean")
    return table.to_numpy(dtype=float)


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


def majority_accuracy(df: pd.DataFrame, by=("budget",), kind: str | None = None) -> pd.DataFrame:
    """maj@n per group of ``by``: per problem, the vote of all its samples over *equivalence classes* of
    ``prediction`` (the scoring core's ``majority``; ``kind`` defaults to the benchmark's grader), ties between
    classes broken uniformly at random (a tie is a share of a correct vote), missing answers never voting."""
    by = list(by)
    kind = grader_kind(df) if kind is None else kind
    out = []
    for key, group in df.sort_values("seed").groupby(by + ["problem_id"], sort=True):
        score = majority(group["prediction"].tolist(), group["correct"].astype(float).tolist(), kind)
        out.append((*((key,) if not isinstance(key, tuple) else key), score))
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
    boots = bootstrap_means(per_problem, n_boot, rng)                            # (n_boot,), one stream with the flips
    observed = per_problem.mean()
    # Sign flips of per-problem differences: the null "pruning changes nothing" makes each sign equally likely.
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(per_problem)))
    null = np.abs((signs * per_problem).mean(1))
    p_value = (1 + np.sum(null >= abs(observed) - 1e-12)) / (n_perm + 1)
    return {"diff": float(observed), "ci_low": float(np.quantile(boots, 0.025)),
            "ci_high": float(np.quantile(boots, 0.975)), "p_value": float(p_value), "n": int(len(merged))}
