"""The scoring core every table uses: one answer equivalence, one majority vote, one bootstrap.

- **Equivalence** of two extracted answers is the grader's own (``grading.answers_equivalent``: math-verify
  for math, equal values for numbers, the same letter for choices); a missing, NaN or empty answer is
  equivalent to nothing and never votes.
- **Majority vote** is over equivalence classes (``answer_classes``; ``\\frac12`` and ``0.5`` are one vote),
  computed exactly over all k-subsets of n samples with ties between classes broken uniformly at random
  (``maj_at_k``; self-consistency, Wang et al., arXiv 2203.11171). ``stats.majority_accuracy`` (maj@n) and
  ``metrics.parallel_table`` (maj@k) both call it. Grouping raw strings instead, as the predecessor
  harness (arXiv 2510.22228) does, splits one answer into several votes.
- **Bootstrap**: problems are the unit (Miller, "Adding Error Bars to Evals", arXiv 2411.00640). A vector of
  per-problem values is resampled over problems; a (problems, seeds) matrix is resampled over problems, then
  over each chosen problem's seeds (a two-level cluster bootstrap; Efron & Tibshirani 1993). One ``N_BOOT``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

N_BOOT = 2000  # bootstrap resamples of every CI the kit reports (slopes.py's own, costlier fits use fewer)


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_means(values: np.ndarray, n_boot: int = N_BOOT, rng: np.random.Generator | int = 0) -> np.ndarray:
    """(n_boot,) bootstrap means of ``values``: (P,) per-problem values resampled over problems, or a
    (P, S) matrix (NaN where a problem has fewer samples) resampled over problems then seeds within them.
    ``rng``: a seed or a Generator (a caller that draws more from the same stream passes its own)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    values = np.asarray(values, dtype=float)
    problems = values.shape[0]
    rows = rng.integers(0, problems, size=(n_boot, problems))                 # (B, P)
    if values.ndim == 1:
        return values[rows].mean(axis=1)
    seeds = values.shape[1]
    cols = rng.integers(0, seeds, size=(n_boot, problems, seeds))             # (B, P, S)
    picked = values[rows[..., None], cols]                                    # (B, P, S)
    return np.nanmean(picked.reshape(n_boot, -1), axis=1)


def bootstrap_ci(values: np.ndarray, n_boot: int = N_BOOT, level: float = 0.95,
                 seed: int | np.random.Generator = 0) -> tuple[float, float]:
    """Percentile CI at ``level`` of the mean of ``values`` (see ``bootstrap_means``)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95")
    means = bootstrap_means(values, n_boot, seed)
    alpha = round((1 - level) / 2, 12)  # 0.95 -> exactly 0.025 (1 - 0.95 is 0.05000000000000004 in floats)
    return float(np.nanquantile(means, alpha)), float(np.nanquantile(means, 1 - alpha))


# ------------------------------------------------------------------------------------ answer classes
def answer_classes(answers: Sequence, kind: str = "math") -> list[int]:
    """Class label per answer (equal labels = equivalent answers); -1 for an empty / missing answer.

    Each answer joins the first class whose first member it is equivalent to (equivalence is assumed
    transitive, as math-verify's is on the answers it parses)."""
    from .grading import answers_equivalent, missing

    heads: list[str] = []
    labels = []
    for answer in answers:
        if missing(answer):
            labels.append(-1)
            continue
        label = next((i for i, head in enumerate(heads) if answers_equivalent(kind, head, str(answer))), None)
        if label is None:
            heads.append(str(answer))
            label = len(heads) - 1
        labels.append(label)
    return labels


def grader_kind(df) -> str:
    """The grader kind of a frame's benchmark (its ``benchmark`` column, through the task registry); math
    when the frame has none."""
    if "benchmark" not in df.columns:
        return "math"
    from .benchmarks import resolve

    return resolve(str(df["benchmark"].iloc[0]))[0].grader


# ------------------------------------------------------------------------------------------ maj@k
def check_counts(n, c, k) -> tuple[int, int, int]:
    values = {"n": n, "c": c, "k": k}
    for name, value in values.items():
        if isinstance(value, bool) or not float(value).is_integer():
            raise ValueError(f"pass_at_k: {name}={value!r} must be a whole number")
    n, c, k = int(n), int(c), int(k)
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: n={n}, c={c}, k={k}; allowed: n >= 1, 0 <= c <= n, 1 <= k <= n. "
                         "k cannot exceed the number of samples n; draw more samples or lower k.")
    return n, c, k


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
    check_counts(n, 0, k)
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


def majority(predictions: Sequence, correct: Sequence, kind: str, k: int | None = None) -> float:
    """maj@k (default k = n, all samples) of one problem's samples: classes by ``kind``'s equivalence."""
    return maj_at_k(answer_classes(list(predictions), kind), list(correct), len(predictions) if k is None else k)
