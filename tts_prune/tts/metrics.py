"""Parallel test-time scaling: unbiased pass@k, maj@k over equivalence classes of answers, coverage.

With ``n`` samples of a problem (temperature > 0, several seeds), of which ``c`` are correct:

- **pass@k** is the chance that at least one of ``k`` samples drawn without replacement from the ``n`` is
  correct, ``1 - C(n-c, k) / C(n, k)``: the unbiased estimator of Chen et al., "Evaluating Large Language
  Models Trained on Code" (arXiv 2107.03374), computed in its numerically stable product form
  ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``.
- **maj@k** (self-consistency, Wang et al., arXiv 2203.11171) is the chance that the most frequent answer
  among ``k`` such samples is correct (the scoring core's ``scoring.maj_at_k``). Answers vote by *mathematical equivalence* (``\\frac12`` and ``0.5``
  are one vote, via math-verify for math benchmarks), an empty or missing answer never votes, and a tie
  between classes is broken uniformly at random (so a tie counts as a share of a correct vote). It is
  computed *exactly* over all ``C(n, k)`` subsets by a dynamic programme over the answer classes (the
  subset's class counts are multivariate hypergeometric), not by sampling subsets; the tests check it
  against brute-force enumeration of subsets. The predecessor harness (arXiv 2510.22228) reports maj@k on
  64 samples; it groups raw strings, which splits one answer into several votes.
- **coverage** is pass@n: the share of problems solved by at least one of all ``n`` samples
  (Brown et al., "Large Language Monkeys", arXiv 2407.21787).

``parallel_table`` computes all three per (run, budget, k) over a results frame, with 95% bootstrap CIs
over problems (problems are the unit, as in ``tts_prune.tts.stats``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .scoring import N_BOOT, answer_classes, bootstrap_ci, check_counts, grader_kind, maj_at_k  # noqa: F401


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021, arXiv 2107.03374)."""
    n, c, k = check_counts(n, c, k)
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    # 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials, no cancellation
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def coverage(c: int, n: int) -> float:
    """1 when at least one of the ``n`` samples is correct (pass@n), else 0."""
    return pass_at_k(n, c, n)


# ------------------------------------------------------------------------------------- the table
def per_problem(df: pd.DataFrame, ks: Sequence[int], kind: str | None = None) -> pd.DataFrame:
    """One row per (problem, k): n, c, pass@k, maj@k, coverage, mean generated tokens per sample.

    ``df`` holds the samples of ONE run and budget (one row per seed). ``kind`` is the grader kind used to
    group answers (default: the benchmark's grader, from the ``benchmark`` column)."""
    kind = grader_kind(df) if kind is None else kind
    rows = []
    for problem, group in df.groupby("problem_id", sort=True):
        n, c = len(group), int(group["correct"].astype(bool).sum())
        labels = answer_classes(group["prediction"].tolist() if "prediction" in group else [None] * n, kind)
        tokens = float((group.get("thinking_tokens", 0) + group.get("answer_tokens", 0)).mean())
        for k in ks:
            if k > n:
                raise ValueError(f"k={k} exceeds the {n} samples of problem {problem!r}; use k <= {n} "
                                 "(or evaluate with more seeds)")
            rows.append({"problem_id": problem, "k": k, "n": n, "c": c, "pass_at_k": pass_at_k(n, c, k),
                         "maj_at_k": maj_at_k(labels, group["correct"].astype(float).tolist(), k),
                         "coverage": coverage(c, n), "tokens_per_sample": tokens})
    return pd.DataFrame(rows)


def parallel_table(df: pd.DataFrame, by=("run", "budget"), ks: Sequence[int] | None = None,
                   n_boot: int = N_BOOT, seed: int = 0, kind: str | None = None) -> pd.DataFrame:
    """pass@k, maj@k and coverage per (``by``, k), with 95% bootstrap CIs over problems.

    ``ks`` defaults to the powers of two up to the smallest sample count of a group, plus that count.
    Each row also gives ``tokens`` = k x mean generated (thinking + answer) tokens per sample: the token
    cost of k parallel samples, to put parallel and sequential scaling on one axis.
    """
    by = [c for c in by if c in df.columns]
    missing = [c for c in ("problem_id", "correct") if c not in df.columns]
    if missing or not by:
        raise ValueError(f"parallel_table: needs problem_id, correct and some of the `by` columns; missing "
                         f"{missing or list(by)} (have {list(df.columns)})")
    out = []
    for key, group in df.groupby(by, sort=True):
        n_min = int(group.groupby("problem_id").size().min())
        group_ks = ks or sorted({2 ** i for i in range(int(math.log2(n_min)) + 1)} | {n_min})
        table = per_problem(group, group_ks, kind)
        for k, part in table.groupby("k"):
            row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
            row.update(k=int(k), n_problems=len(part), tokens=float(k * part["tokens_per_sample"].mean()))
            for metric in ("pass_at_k", "maj_at_k", "coverage"):
                values = part[metric].to_numpy(dtype=float)
                low, high = bootstrap_ci(values, n_boot, seed=seed)
                row.update({metric: float(values.mean()), f"{metric}_low": low, f"{metric}_high": high})
            out.append(row)
    return pd.DataFrame(out)


def token_cost_table(df: pd.DataFrame, parallel: pd.DataFrame | None = None, by=("run",),
                     ks: Sequence[int] | None = None, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Sequential and parallel scaling on one axis of generated tokens per problem, per group of ``by``.

    ``mode="sequential"``: ``df``'s records, one sample per problem at each budget (pass@1 averaged over seeds,
    95% bootstrap CI), at the mean generated tokens (thinking + answer) of a sample. ``mode="parallel maj@k"``
    (and ``"parallel pass@k"``, an oracle upper bound): k of the samples in ``parallel`` (records with several
    sampled seeds per problem, e.g. 04-tts-scaling's parallel probe at one budget), at k x the mean tokens of
    one of them. Without ``parallel``, ``df``'s own budgets with at least 2 samples per problem are used.
    At equal tokens, the higher line says which way of spending them pays.
    """
    from .stats import accuracy_table

    by = [c for c in by if c in df.columns]
    generated = lambda f: f.assign(generated_tokens=f["thinking_tokens"] + f.get("answer_tokens", 0))  # noqa: E731
    df = generated(df)
    sequential = accuracy_table(df.assign(thinking_tokens=df["generated_tokens"]), by=by + ["budget"], n_boot=n_boot,
                                seed=seed).reset_index()
    rows = [sequential.assign(mode="sequential", tokens=sequential["thinking_tokens"])[
        by + ["budget", "mode", "tokens", "acc", "ci_low", "ci_high"]]]
    sampled = df if parallel is None or parallel.empty else generated(parallel)
    counts = sampled.groupby(by + ["budget", "problem_id"]).size() if not sampled.empty else pd.Series(dtype=int)
    enough = counts[counts >= 2].reset_index()[by + ["budget"]].drop_duplicates()
    if not enough.empty:
        table = parallel_table(sampled.merge(enough, on=by + ["budget"]), by=by + ["budget"], ks=ks, n_boot=n_boot,
                               seed=seed)
        table = table[table["k"] >= 2]
        for metric in ("maj_at_k", "pass_at_k"):
            rows.append(table.assign(mode=f"parallel {metric.replace('_at_', '@')}", acc=table[metric],
                                     ci_low=table[f"{metric}_low"], ci_high=table[f"{metric}_high"])[
                by + ["budget", "k", "mode", "tokens", "acc", "ci_low", "ci_high"]])
    return pd.concat(rows, ignore_index=True)
