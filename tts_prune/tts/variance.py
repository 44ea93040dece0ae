"""Seed variance, decomposed: avg@k with its standard error, and how much of it is problems vs seeds.

A run's records at one budget form a (problems x seeds) grid of 0/1 grades ``y[p, s]``. The kit's default is the
two-level (nested) random-effects model of an evaluation whose seeds are independent samples per problem (each
(problem, seed) trace has its own random stream, as ``tts_prune.evaluate`` draws them):

    y[p, s] = mu + a[p] + e[p, s],   Var a = var_problem (between problems), Var e = var_seed (between seeds)

(Miller, "Adding Error Bars to Evals", arXiv 2411.00640, section 3: problems are the sampled unit, seeds reduce
the within-problem noise). Components are estimated by the method of moments (ANOVA mean squares: unbiased and
needing no normality, which 0/1 grades lack; Searle, Casella & McCulloch, "Variance Components", 1992, ch. 3):
``var_seed = MS_within``, ``var_problem = (MS_P - MS_within) / S`` (negatives -> 0). The mean over the grid,
avg@k with k = S seeds (lighteval's avg@k; "A Sober Look at Progress in LM Reasoning", arXiv 2504.07086, reports
the seed spread ``seed_sd``), has ``Var = var_problem/P + var_seed/(PS) = E[MS_P]/(PS)`` and a t interval with
P - 1 degrees of freedom.

A seed can also shift EVERY problem at once (a seed main effect ``b[s]``: shared randomness such as a
calibration seed, or a batch-dependent kernel). The crossed model ``mu + a[p] + b[s] + e[p, s]`` estimates it
as ``var_seed_shift = (MS_S - MS_E) / P``, reported with its F-test p-value ``seed_shift_p`` in every table.
``crossed=True`` puts it in the interval: ``Var = (MS_P + MS_S - MS_E) / (PS)`` with Satterthwaite's degrees of
freedom, the seed term dropped when ``MS_S <= MS_E`` (estimated below zero). That interval holds its coverage
with seed effects present, at a price in power with few seeds; the tests check both intervals by simulation.

The paired pruned-vs-dense difference applies the same model to ``d[p, s] = y_pruned[p, s] - y_dense[p, s]``
(same problems, same seeds).

Why not a two-way (problem and seed) bootstrap: resampling problems and seeds independently double-counts the
residual (Owen, "The pigeonhole bootstrap", Ann. Appl. Stat. 2007): its variance exceeds the crossed one by about
``var_seed / S``, which with the three seeds of arXiv 2604.25098 makes the interval far too wide.
``tts_prune.tts.stats`` keeps its nested bootstrap (problems, then seeds within a problem) for accuracy curves:
the same model as the default here, by resampling instead of moments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

BY = ("model", "benchmark", "run", "budget")
COLUMNS = ("problems", "seeds", "avg_at_k", "se", "ci_low", "ci_high", "df", "seed_sd", "var_problem", "var_seed",
           "var_seed_shift", "seed_shift_p", "share_problem", "share_seed", "share_seed_shift", "se_share_seeds")
PAIRED_COLUMNS = ["diff", "se", "ci_low", "ci_high", "df", "p_value", "mdd", "problems", "seeds", "var_problem",
                  "var_seed", "var_seed_shift", "seed_shift_p"]
from ..pruning.recipe import DENSE  # the unpruned baseline, named once (pruning/recipe.py)


@dataclass(frozen=True)
class Components:
    """Method-of-moments fit of one (problems x seeds) grid; ``var_mean`` is the variance of its mean."""

    mean: float
    problems: int
    seeds: int
    var_problem: float
    var_seed: float         # between seeds within a problem (nested) / residual (crossed)
    var_seed_shift: float   # seed main effect of the crossed model (0 with one seed)
    seed_shift_p: float     # F-test of "no seed main effect" (NaN with one seed)
    var_mean: float
    df: float               # degrees of freedom of ``var_mean`` (Satterthwaite's when crossed)
    seed_sd: float          # standard deviation of the per-seed means (what a reader sees across reruns)
    crossed: bool = False

    @property
    def se(self) -> float:
        return float(np.sqrt(max(self.var_mean, 0.0)))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        half = sps.t.ppf(0.5 + level / 2, self.df) * self.se
        return self.mean - half, self.mean + half

    def shares(self) -> dict:
        total = self.var_problem + self.var_seed + self.var_seed_shift
        if total <= 0:
            return {"share_problem": np.nan, "share_seed": np.nan, "share_seed_shift": np.nan}
        return {"share_problem": self.var_problem / total, "share_seed": self.var_seed / total,
                "share_seed_shift": self.var_seed_shift / total}


def grid(records: pd.DataFrame, value: str = "correct") -> np.ndarray:
    """(problems, seeds) matrix of ``value`` (several samples of one problem and seed are averaged).

    Only problems with a record under every seed are kept: the moments need a complete grid."""
    missing = [c for c in ("problem_id", "seed", value) if c not in records.columns]
    if missing:
        raise ValueError(f"columns {missing} are missing; the records frame has {list(records.columns)}")
    values = records[value].astype(float)
    table = values.groupby([records["problem_id"], records["seed"]], sort=True).mean().unstack("seed")
    return table.dropna(axis=0, how="any").to_numpy(dtype=float)


def components(matrix, crossed: bool = False) -> Components:
    """Random-effects components of a (problems, seeds) grid, nested or ``crossed`` (see the module docstring)."""
    y = np.asarray(matrix, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 1 or np.isnan(y).any():
        raise ValueError(f"components needs a complete (problems >= 2, seeds >= 1) grid without NaN; got shape "
                         f"{y.shape}. Evaluate every problem under every seed (or drop incomplete problems).")
    P, S = y.shape
    mean = float(y.mean())
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    ms_p = S * float(((rows - mean) ** 2).sum()) / (P - 1)
    if S == 1:  # problem and seed terms are confounded: the classic interval over problems
        return Components(mean, P, 1, ms_p, 0.0, 0.0, float("nan"), ms_p / P, float(P - 1), 0.0, crossed)
    ms_w = float(((y - rows[:, None]) ** 2).sum()) / (P * (S - 1))       # within problems
    ms_s = P * float(((cols - mean) ** 2).sum()) / (S - 1)
    df_e = (P - 1) * (S - 1)
    ms_e = float(((y - rows[:, None] - cols[None, :] + mean) ** 2).sum()) / df_e
    shift = max((ms_s - ms_e) / P, 0.0)
    shift_p = float(sps.f.sf(ms_s / ms_e, S - 1, df_e)) if ms_e > 0 else (0.0 if ms_s > 0 else 1.0)
    seed_sd = float(np.std(cols, ddof=1))
    if not crossed:
        var_mean = ms_p / (P * S)
        return Components(mean, P, S, max((ms_p - ms_w) / S, 0.0), ms_w, shift, shift_p, var_mean, float(P - 1),
                          seed_sd, False)
    # Var(mean) = (MS_P + MS_S - MS_E) / PS, unbiased. A seed term estimated below zero (MS_S <= MS_E) is dropped,
    # as its component is: Satterthwaite's df for a near-cancelling small-df difference would be tiny and the
    # interval needlessly wide (coverage ~99% in the tests' simulations without a seed effect, ~96% with this).
    if ms_s > ms_e:
        terms, dfs = np.array([ms_p, ms_s, -ms_e]) / (P * S), np.array([P - 1, S - 1, df_e], dtype=float)
    else:
        terms, dfs = np.array([ms_p]) / (P * S), np.array([P - 1], dtype=float)
    var_mean = float(terms.sum())
    if var_mean <= 0:  # MS_P < MS_S - MS_E cannot make the variance negative: keep the problem term alone
        terms, dfs, var_mean = terms[:1], dfs[:1], float(terms[0])
    # every grade alike (all solved, or the same 0/1 pattern under every seed): a zero-width interval
    df = float(var_mean ** 2 / np.sum(terms ** 2 / dfs)) if var_mean > 0 else float(P - 1)
    return Components(mean, P, S, max((ms_p - ms_e) / S, 0.0), ms_e, shift, shift_p, var_mean, df, seed_sd, True)


def _check_levels(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha={alpha} and power={power} must both lie in (0, 1); e.g. alpha=0.05, power=0.8")


def minimum_detectable_difference(se: float, df: float = np.inf, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true difference a two-sided level-``alpha`` t-test with standard error ``se`` and ``df``
    degrees of freedom detects with probability ``power``."""
    _check_levels(alpha, power)
    if not df or df <= 0:
        return float("inf")
    return float((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se)


def _row(keys: dict, fit: Components, level: float) -> dict:
    low, high = fit.interval(level)
    # share of Var(mean) that more seeds would shrink (the problem term is fixed by the problem count)
    seed_part = fit.var_mean - fit.var_problem / fit.problems
    return {**keys, "problems": fit.problems, "seeds": fit.seeds, "avg_at_k": fit.mean, "se": fit.se,
            "ci_low": low, "ci_high": high, "df": fit.df, "seed_sd": fit.seed_sd, "var_problem": fit.var_problem,
            "var_seed": fit.var_seed, "var_seed_shift": fit.var_seed_shift, "seed_shift_p": fit.seed_shift_p,
            **fit.shares(),
            "se_share_seeds": max(seed_part, 0.0) / fit.var_mean if fit.var_mean > 0 and fit.seeds > 1 else np.nan}


def _groups(df: pd.DataFrame, by):
    by = [c for c in by if c in df.columns]
    if df.empty:
        return
    for key, group in df.groupby(by, sort=True):
        yield dict(zip(by, key if isinstance(key, tuple) else (key,))), group


def variance_components(df: pd.DataFrame, by=BY, level: float = 0.95, crossed: bool = False) -> pd.DataFrame:
    """Per group of ``by`` (default run x benchmark x budget, the columns present): avg@k over the seeds with
    its SE and t interval (``ci_low``, ``ci_high``, ``df``), the spread of the per-seed accuracies (``seed_sd``),
    the variance components and their shares (``var_problem``, ``var_seed``, ``var_seed_shift`` with its F-test
    ``seed_shift_p``), and ``se_share_seeds``: the share of the squared SE that more seeds would remove.
    ``crossed``: put the seed main effect in the interval (see the module docstring).
    ``df`` is the records frame (``tts_prune.load_results``, or
    ``explorer.runs`` of it for the ``run`` column)."""
    rows = []
    for keys, group in _groups(df, by):
        matrix = grid(group)
        if matrix.shape[0] < 2:
            continue  # one problem: no variance to decompose
        rows.append(_row(keys, components(matrix, crossed), level))
    # No group with two problems: an empty table that still has the grouping columns callers select on.
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[c for c in by if c in df.columns] + list(COLUMNS))


def paired_components(pruned: pd.DataFrame, dense: pd.DataFrame, value: str = "correct", level: float = 0.95,
                      alpha: float = 0.05, power: float = 0.8, crossed: bool = False) -> dict:
    """Pruned minus dense on matched (problem, seed) cells of ONE budget: ``diff`` with its SE, t interval,
    two-sided t-test ``p_value`` and ``mdd`` (the smallest difference detectable at ``alpha`` with ``power``,
    ``minimum_detectable_difference``), plus the components of the differences."""
    cols = ["problem_id", "seed", value]
    merged = pruned[cols].merge(dense[cols], on=["problem_id", "seed"], suffixes=("_p", "_d"))
    if merged["problem_id"].nunique() < 2:
        raise ValueError("paired_components: fewer than 2 problems are evaluated by both models under the same "
                         "seeds; evaluate both on the same problems and seeds")
    merged["d"] = merged[f"{value}_p"].astype(float) - merged[f"{value}_d"].astype(float)
    fit = components(grid(merged, "d"), crossed)
    low, high = fit.interval(level)
    t = fit.mean / fit.se if fit.se > 0 else (0.0 if fit.mean == 0 else np.inf)
    p_value = float(2 * sps.t.sf(abs(t), fit.df)) if fit.df > 0 else 1.0
    return {"diff": fit.mean, "se": fit.se, "ci_low": low, "ci_high": high, "df": fit.df, "p_value": p_value,
            "mdd": minimum_detectable_difference(fit.se, fit.df, alpha, power), "problems": fit.problems,
            "seeds": fit.seeds, "var_problem": fit.var_problem, "var_seed": fit.var_seed,
            "var_seed_shift": fit.var_seed_shift, "seed_shift_p": fit.seed_shift_p}


def paired_variance(df: pd.DataFrame, keys=("model", "benchmark", "budget"), alpha: float = 0.05,
                    power: float = 0.8, crossed: bool = False) -> pd.DataFrame:
    """``paired_components`` for every pruned run against the dense run of the same ``keys`` (``explorer.runs``
    frame: ``method`` and ``run`` columns). Runs without a dense baseline on the same keys are skipped."""
    missing = [c for c in list(keys) + ["method", "run"] if c not in df.columns]
    if missing:
        raise ValueError(f"paired_variance needs columns {missing}; pass explorer.runs(load_results(...))")
    rows = []
    for labels, pruned, dense in pruned_and_dense(df, keys):
        try:
            result = paired_components(pruned, dense, alpha=alpha, power=power, crossed=crossed)
        except ValueError:
            continue  # fewer than two shared problems: nothing to test
        rows.append({**labels, **result})
    return pd.DataFrame(rows, columns=list(keys) + ["run"] + PAIRED_COLUMNS)


def pruned_and_dense(df: pd.DataFrame, keys):
    """``(labels, pruned, dense)`` for every pruned run and ``keys`` group of an ``explorer.runs`` frame, with the
    dense records of the same ``keys`` (``labels``: the keys and the run); groups without a dense run are left out."""
    dense = df[df["method"] == DENSE]
    for key, pruned in df[df["method"] != DENSE].groupby(list(keys) + ["run"], sort=True):
        match = dense
        for column, value in zip(keys, key):
            match = match[match[column] == value]
        if not match.empty:
            yield dict(zip(list(keys) + ["run"], key)), pruned, match
