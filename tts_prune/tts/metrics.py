"""Parallel test-time scaling: unbiased pass@k, maj@k over equivalence classes of answers, coverage.

With ``n`` samples of a problem (temperature > 0, several seeds), of which ``c`` are correct:

- **pass@k** is the chance that at least one of ``k`` samples drawn without replacement from the ``n`` is
  correct, ``1 - C(n-c, k) / C(n, k)``: the unbiased estimator of Chen et al., "Evaluating Large Language
  Models Trained on Code" (arXiv 2107.03374), computed in its numerically stable product form
  ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``.
- **maj@k** (self-consistency, Wang et al., arXiv 2203.11171) is the chance that the most frequent answer
  among ``k`` such samples is correct. Answers vote by *mathematical equivalence* (``\\frac12`` and ``0.5``
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

N_BOOT = 2000


def _check_counts(n, c, k) -> tuple[int, int, int]:
    values = {"n": n, "c": c, "k": k}
    for name, value in values.items():
        if isinstance(value, bool) or not float(value).is_integer():
            raise ValueError(f"pass_at_k: {name}={value!r} must be a whole number")
    n, c, k = int(n), int(c), int(k)
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: n={n}, c={c}, k={k}; allowed: n >= 1, 0 <= c <= n, 1 <= k <= n. "
                         "k cannot exceed the number of samples n; draw more samples or lower k.")
    return n, c, k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021, arXiv 2107.03374)."""
    n, c, k = _check_counts(n, c, k)
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    # 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials, no cancellation
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


# ------------------------------------------------------------------------------ answer equivalence
def answers_equivalent(kind: str, a, b) -> bool:
    """True when extracted answers ``a`` and ``b`` are one vote for grader ``kind``: the grader's own
    ``tts_prune.tts.grading.answers_equivalent`` (math-verify for math), except that an empty or missing
    answer is equivalent to nothing (it never votes)."""
    from .grading import answers_equivalent as same_answer

    if _missing(a) or _missing(b):
        from .grading import _check_kind

        _check_kind(kind)
        return False
    return bool(same_answer(kind, str(a), str(b)))


def _missing(answer) -> bool:
    return answer is None or (isinstance(answer, float) and math.isnan(answer)) or not str(answer).strip()


def answer_classes(answers: Sequence, kind: str = "math") -> list[int]:
    """Class label per answer (equal labels = equivalent answers); -1 for an empty / missing answer.

    Each answer joins the first class whose first member it is equivalent to (equivalence is assumed
    transitive, as math-verify's is on the answers it parses)."""
    heads: list[str] = []
    labels = []
    for answer in answers:
        if _missing(answer):
            labels.append(-1)
            continue
        label = next((i for i, head in enumerate(heads) if answers_equivalent(kind, head, answer)), None)
        if label is None:
            heads.append(str(answer))
            label = len(heads) - 1
        labels.append(label)
    return labels


# ------------------------------------------------------------------------------------------ maj@k
def maj_at_k(labels: Sequence[int], correct: Sequence, k: int) -> float:
    """Exact expected maj@k over all k-subsets of n samples.

    ``labels``: answer class per sample (``answer_classes``; -1 never votes). ``correct``: grade per sample;
    a class counts as correct by the mean grade of its members (equivalent answers share one grade).
    Ties between top classes are broken uniformly at random; a subset without any vote scores 0.
    """
    labels = [int(x) for x in labels]
    n = len(labels)
    if len(correct) != n:
        raise ValueError(f"maj_at_k: {n} labels but {len(correct)} grades; pass one grade per sample")
    _check_counts(n, 0, k)
    counts: dict[int, int] = {}
    grades: dict[int, list[float]] = {}
    for label, grade in zip(labels, correct):
        counts[label] = counts.get(label, 0) + 1
        grades.setdefault(label, []).append(float(grade))
    abstain = counts.pop(-1, 0)
    classes = sorted(counts)
    score = 0.0
    for winner in classes:
        weight = float(np.mean(grades[winner]))
        if weight == 0:
            continue
        others = [counts[c] for c in classes if c != winner]
        for t in range(1, min(k, counts[winner]) + 1):
            # ways[j][r]: subsets of j samples from the other classes, each with <= t votes, r of them with t
            ways = [[0] * (len(others) + 1) for _ in range(k - t + 1)]
            ways[0][0] = 1
            for size in others:
                new = [[0] * (len(others) + 1) for _ in range(k - t + 1)]
                for j in range(k - t + 1):
                    for r in range(len(others) + 1):
                        if not ways[j][r]:
                            continue
                        for take in range(0, min(t, size, k - t - j) + 1):
                            new[j + take][r + (take == t)] += ways[j][r] * math.comb(size, take)
                ways = new
            for j in range(k - t + 1):
                fill = math.comb(abstain, k - t - j)  # the rest of the subset are non-votes
                if not fill:
                    continue
                for r in range(len(others) + 1):
                    if ways[j][r]:
                        score += weight * math.comb(counts[winner], t) * ways[j][r] * fill / (r + 1)
    return float(score / math.comb(n, k))


def coverage(c: int, n: int) -> float:
    """1 when at least one of the ``n`` samples is correct (pass@n), else 0."""
    return pass_at_k(n, c, n)


# ------------------------------------------------------------------------------------- the table
def _bootstrap(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def per_problem(df: pd.DataFrame, ks: Sequence[int], kind: str | None = None) -> pd.DataFrame:
    """One row per (problem, k): n, c, pass@k, maj@k, coverage, mean generated tokens per sample.

    ``df`` holds the samples of ONE run and budget (one row per seed). ``kind`` is the grader kind used to
    group answers (default: the benchmark's grader, from the ``benchmark`` column)."""
    if kind is None:
        from .benchmarks import resolve

        kind = resolve(str(df["benchmark"].iloc[0]))[0].grader if "benchmark" in df.columns else "math"
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
                low, high = _bootstrap(values, n_boot, seed)
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
