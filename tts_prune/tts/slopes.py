"""The scaling slope as a result: accuracy against log2(thinking budget), one fitted curve per run.

Per run, the records' grades are fitted by maximum likelihood (Bernoulli, every record one trial) with a
logistic in log budget that may level off below 1:

    P(correct | budget b) = ceiling * sigmoid(intercept + slope * (log2 b - log2 b_ref))

``slope`` is the logit rise per doubling of the budget, the shape of the curve apart from where it sits;
``level`` = ceiling * sigmoid(intercept) is the accuracy at the reference budget ``b_ref`` (the geometric middle
of the run's budgets); ``ceiling`` is the plateau (the 3-parameter logistic of item-response theory, with the
upper instead of the lower asymptote free); ``gain_per_doubling`` is d accuracy / d log2 b at ``b_ref``, the
accuracy one more doubling buys there. With fewer than four budgets the ceiling is not identified and is fixed
at 1 (``ceiling_fitted`` False). Budget 0 (no thinking) has no log and is left out of the fit.

Confidence intervals are percentile intervals of a cluster bootstrap over problems: a problem is drawn with all
its seeds and budgets, so the seed noise of each problem and the dependence of its budgets (one trace, cut at
each budget) are carried along. Every run of one model and benchmark is resampled with the SAME draws, which
makes ``slope_tests`` paired: ``d_slope`` (pruned - dense slope) tests whether pruning changes how much extra
thinking buys, separately from ``d_level`` (the accuracy at the reference budget) and ``d_ceiling``; each with a
Wald interval and p-value from the paired bootstrap's standard error (a percentile p-value would need thousands of
replicates to survive Holm over a study's runs). statsmodels is not a dependency of the kit (and has no ceiling
logistic); the fit is Fisher scoring on the per-budget counts, vectorised over every bootstrap replicate at once,
and the tests check it against a direct record-level maximum likelihood (scipy's Nelder-Mead).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit, logit

BY = ("model", "benchmark")
from ..pruning.recipe import DENSE  # the unpruned baseline, named once (pruning/recipe.py)
N_BOOT = 200
# intercept, slope, logit(ceiling): wide enough for any curve the data can show, finite so flat data converge
BOUNDS = ((-12.0, 12.0), (-8.0, 8.0), (-8.0, 8.0))
FIXED_CEILING = 30.0  # logit of a ceiling of 1 (to double precision)


def _parts(theta: np.ndarray, x: np.ndarray, fit_ceiling: bool):
    """p (R, budgets) and dp/dtheta (R, budgets, 3) for theta (R, 3) = (intercept, slope, logit ceiling)."""
    s = expit(theta[:, :1] + theta[:, 1:2] * x[None, :])
    c = expit(theta[:, 2:3]) if fit_ceiling else np.ones((len(theta), 1))
    ds = c * s * (1 - s)
    dc = s * c * (1 - c) if fit_ceiling else np.zeros_like(s)
    return np.clip(c * s, 1e-9, 1 - 1e-9), np.stack([ds, ds * x[None, :], dc], axis=2)


def _nll(p: np.ndarray, hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
    return -(hits * np.log(p) + (trials - hits) * np.log1p(-p)).sum(1)          # (R,)


def fit_curves(x: np.ndarray, hits: np.ndarray, trials: np.ndarray, fit_ceiling: bool = True,
               iterations: int = 200) -> np.ndarray:
    """Maximum-likelihood (intercept, slope, logit ceiling) per row of ``hits``/``trials`` (R, budgets) at
    centred log budgets ``x``: Fisher scoring on every row at once, each step halved until the row's likelihood
    does not fall, parameters kept inside ``BOUNDS`` (a flat or saturated curve stops at a bound)."""
    hits, trials = np.atleast_2d(hits).astype(float), np.atleast_2d(trials).astype(float)
    rows = len(hits)
    rate = np.clip(hits.sum(1) / np.maximum(trials.sum(1), 1), 0.02, 0.98)
    theta = np.stack([logit(rate), np.full(rows, 0.5), np.full(rows, 3.0 if fit_ceiling else FIXED_CEILING)], 1)
    low, high = np.array([b[0] for b in BOUNDS]), np.array([b[1] for b in BOUNDS])
    if not fit_ceiling:
        low[2] = high[2] = FIXED_CEILING
    free = 3 if fit_ceiling else 2
    active = np.arange(rows)                 # rows still improving; converged rows are no longer touched
    for _ in range(iterations):
        t, h, n = theta[active], hits[active], trials[active]
        p, jac = _parts(t, x, fit_ceiling)
        current = _nll(p, h, n)
        grad = np.einsum("rbk,rb->rk", jac, (n * p - h) / (p * (1 - p)))[:, :free]
        info = np.einsum("rbk,rbl,rb->rkl", jac, jac, n / (p * (1 - p)))[:, :free, :free] + 1e-8 * np.eye(free)
        step = np.zeros_like(t)
        step[:, :free] = np.linalg.solve(info, grad[..., None])[..., 0]
        scale = np.ones(len(t))
        for _halving in range(30):
            trial = np.clip(t - scale[:, None] * step, low, high)
            new = _nll(_parts(trial, x, fit_ceiling)[0], h, n)
            worse = new > current + 1e-12
            if not worse.any():
                break
            scale[worse] /= 2
        theta[active] = np.where(worse[:, None], t, trial)
        # nats: a row creeping along a bound gains nothing that matters for inference
        active = active[np.where(worse, 0.0, current - new) >= 1e-9]
        if not len(active):
            break
    return theta
    return theta


def _summaries(theta: np.ndarray) -> dict:
    a, b, c = theta[..., 0], theta[..., 1], expit(theta[..., 2])
    s = expit(a)
    return {"level": c * s, "slope": b, "ceiling": c, "gain_per_doubling": c * s * (1 - s) * b}


def _counts(group: pd.DataFrame, problems: list, budgets: list) -> tuple[np.ndarray, np.ndarray]:
    # (problems, budgets) correct counts and record counts, zeros where a problem was not evaluated
    table = group.assign(correct=group["correct"].astype(float)).groupby(["problem_id", "budget"])["correct"]
    hits = table.sum().unstack("budget").reindex(index=problems, columns=budgets).fillna(0).to_numpy()
    trials = table.size().unstack("budget").reindex(index=problems, columns=budgets).fillna(0).to_numpy()
    return hits, trials


def _fit_group(group: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Point fits and bootstrap replicates (shared problem draws) for every run of one model and benchmark."""
    group = group[group["budget"] > 0]
    budgets = sorted(group["budget"].unique())
    problems = sorted(group["problem_id"].unique())
    x = np.log2(np.asarray(budgets, dtype=float))
    x = x - x.mean()                                         # the reference budget: the geometric middle
    fit_ceiling = len(budgets) >= 4
    weights = np.random.default_rng(seed).multinomial(len(problems), np.full(len(problems), 1 / len(problems)),
                                                      size=n_boot)                     # (B, P) problem draws
    out, stacked_hits, stacked_trials = {}, [], []
    for run, part in group.groupby("run", sort=True):
        hits, trials = _counts(part, problems, budgets)
        stacked_hits.append(np.vstack([hits.sum(0, keepdims=True), weights @ hits]))      # (1 + B, budgets)
        stacked_trials.append(np.vstack([trials.sum(0, keepdims=True), weights @ trials]))
        out[run] = {"problems": int(part["problem_id"].nunique()), "seeds": int(part["seed"].nunique()),
                    "method": part["method"].iloc[0]}
    # every run's point fit and replicates in one vectorised fit: (runs x (1 + B), 3)
    theta = fit_curves(x, np.vstack(stacked_hits), np.vstack(stacked_trials), fit_ceiling).reshape(len(out), -1, 3)
    for fit, run_theta in zip(out.values(), theta):
        fit["theta"] = run_theta
    reference = float(2 ** np.log2(np.asarray(budgets, dtype=float)).mean())
    return {"runs": out, "budgets": budgets, "reference": reference, "fit_ceiling": fit_ceiling}


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def _groups(df: pd.DataFrame, by, n_boot: int, seed: int):
    missing = [c for c in list(by) + ["run", "method", "problem_id", "seed", "budget", "correct"] if c not in df]
    if missing:
        raise ValueError(f"scaling slopes need columns {missing}; pass explorer.runs(tts_prune.load_results(...))")
    for key, group in df.groupby(list(by), sort=True):
        if group.loc[group["budget"] > 0, "budget"].nunique() < 2:
            continue  # one budget: no slope
        yield dict(zip(by, key if isinstance(key, tuple) else (key,))), _fit_group(group, n_boot, seed)


def scaling_slopes(df: pd.DataFrame, by=BY, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per run of each ``by`` group (model x benchmark): ``level``, ``slope``, ``ceiling`` and
    ``gain_per_doubling`` with bootstrap intervals (``<name>_low``/``_high``), ``intercept`` and
    ``reference_budget`` to redraw the curve (``curve``), and the data's size. ``df``: ``explorer.runs`` frame."""
    rows = []
    for keys, fitted in _groups(df, by, n_boot, seed):
        for run, fit in fitted["runs"].items():
            values = _summaries(fit["theta"])
            row = {**keys, "run": run, "method": fit["method"], "problems": fit["problems"], "seeds": fit["seeds"],
                   "budgets": len(fitted["budgets"]), "reference_budget": fitted["reference"],
                   "ceiling_fitted": fitted["fit_ceiling"], "intercept": float(fit["theta"][0, 0])}
            for name, series in values.items():
                low, high = _interval(series[1:], level)
                row.update({name: float(series[0]), f"{name}_low": low, f"{name}_high": high})
            rows.append(row)
    return pd.DataFrame(rows)


def slope_tests(df: pd.DataFrame, by=BY, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Pruned minus dense per pruned run: ``d_slope``, ``d_level``, ``d_ceiling``, each with a Wald interval and
    two-sided Wald ``p_<name>`` from the paired bootstrap's standard error (the two agree on "excludes 0").
    Groups without a dense run are skipped."""
    rows = []
    for keys, fitted in _groups(df, by, n_boot, seed):
        dense = next((f for f in fitted["runs"].values() if f["method"] == DENSE), None)
        if dense is None:
            continue
        base = _summaries(dense["theta"])
        for run, fit in fitted["runs"].items():
            if fit is dense:
                continue
            row = {**keys, "run": run, "reference_budget": fitted["reference"], "ceiling_fitted": fitted["fit_ceiling"]}
            mine = _summaries(fit["theta"])
            for name in ("slope", "level", "ceiling"):
                delta = mine[name] - base[name]                      # (1 + B): the estimate, then replicates
                se = float(np.std(delta[1:], ddof=1))
                # Wald interval and p-value from the same bootstrap SE, so "interval excludes 0" and "p < 0.05" agree
                half = sps.norm.ppf(0.5 + level / 2) * se
                low, high = delta[0] - half, delta[0] + half
                z = delta[0] / se if se > 0 else (0.0 if delta[0] == 0 else np.inf)
                row.update({f"d_{name}": float(delta[0]), f"d_{name}_low": low, f"d_{name}_high": high,
                            f"p_{name}": float(2 * sps.norm.sf(abs(z)))})
            rows.append(row)
    return pd.DataFrame(rows)


def curve(row, budgets) -> np.ndarray:
    """Fitted accuracy of one ``scaling_slopes`` row at ``budgets`` (positive)."""
    x = np.log2(np.asarray(budgets, dtype=float)) - np.log2(row["reference_budget"])
    return row["ceiling"] * expit(row["intercept"] + row["slope"] * x)
