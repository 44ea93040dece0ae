"""Power, before and after a run: problems x seeds needed to detect a difference, and the smallest one detected.

A paired comparison (pruned vs dense on the same problems and seeds) estimates ``d = mean(y_pruned - y_dense)``
over a (P problems x S seeds) grid; with the crossed components of the differences (``tts_prune.tts.variance``)

    Var(d_hat) = var_problem / P + var_seed / (P S)  [+ var_seed_shift / S with a seed main effect, crossed=True]

A two-sided level-``alpha`` test has power ``power`` against a true difference ``d`` when
``(z_{1-alpha/2} + z_{power}) * SE <= |d|`` (the normal approximation of every power calculation for a
difference of means, e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", ch. 3), so

- **before** (``problems_needed``): for each seed count S, the smallest P meeting it; none when a seed main
  effect alone, ``var_seed_shift / S``, is already too large (then only more seeds help);
- **after** (``minimum_detectable_difference``): ``(t_{1-alpha/2, df} + t_{power, df}) * SE`` of a finished
  comparison (``df`` from the fit): a "no significant difference" with an MDD of 0.20 says the
  run could not tell, not that pruning changed nothing.

``power_table`` takes the variance of the differences from pilot records (a study's own, or a smaller one): the
mean of the components over every pruned-vs-dense comparison (run x budget) of a model and benchmark. A pilot with
one seed cannot split problem from seed variance; the table then puts all of it on problems, the conservative
side (more seeds are assumed not to help). A pilot without a dense baseline uses one run's components doubled
(two independent runs), conservative again. Multiple comparisons: pass the per-test alpha you will use (e.g.
``alpha / m`` for Bonferroni over m tests); the default is the unadjusted 0.05.

``tts-prune power --results DIR`` prints the table for a results store (``tts_prune.report.reviewer``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .variance import DENSE, _check_levels as _check, components, grid, minimum_detectable_difference, paired_variance

D_VALUES = (0.05, 0.10)
SEED_COUNTS = (1, 2, 3, 5, 10)


def problems_needed(var_problem: float, var_seed: float, d: float, seeds: int, var_seed_shift: float = 0.0,
                    alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest number of problems P with ``(z_{1-alpha/2} + z_power) * SE(P, seeds) <= d``; ``inf`` when no P
    suffices at this many seeds (the seed main effect ``var_seed_shift / seeds`` alone exceeds the budget)."""
    _check(alpha, power)
    if d <= 0 or seeds < 1:
        raise ValueError(f"d={d} must be > 0 and seeds={seeds} >= 1")
    budget = (d / (sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))) ** 2   # the variance d_hat may have
    room = budget - var_seed_shift / seeds
    if room <= 0:
        return float("inf")
    return float(max(2, math.ceil((var_problem + var_seed / seeds) / room - 1e-12)))


COMPONENTS = ("var_problem", "var_seed", "var_seed_shift")


def _pilot(df: pd.DataFrame, keys, crossed: bool) -> tuple[dict, str]:
    """Mean components of the paired differences in ``df`` (one model and benchmark), and where they came from."""
    paired = (paired_variance(df, keys=list(keys) + ["budget"], crossed=crossed) if (df["method"] == DENSE).any()
              else pd.DataFrame())
    if not paired.empty:
        comps = {k: float(paired[k].mean()) for k in COMPONENTS}
        return {**comps, "pilot_problems": int(paired["problems"].max()), "pilot_seeds": int(paired["seeds"].max()),
                "comparisons": len(paired)}, "paired pruned - dense"
    fits = [components(m, crossed) for _, g in df.groupby(["run", "budget"]) if (m := grid(g)).shape[0] >= 2]
    if not fits:
        raise ValueError("the pilot records have no (run, budget) with 2 problems or more; nothing to estimate from")
    comps = {k: 2 * float(np.mean([getattr(f, k) for f in fits])) for k in COMPONENTS}
    return {**comps, "pilot_problems": max(f.problems for f in fits), "pilot_seeds": max(f.seeds for f in fits),
            "comparisons": 0}, "one run, doubled (no dense baseline)"


def power_table(df: pd.DataFrame, d: Sequence[float] = D_VALUES, power: float = 0.8, alpha: float = 0.05,
                seeds: Sequence[int] = SEED_COUNTS, by=("model", "benchmark"), crossed: bool = False) -> pd.DataFrame:
    """Problems needed per (``by`` group, d, seed count) for a paired pruned-vs-dense test, from pilot records.

    ``df``: records with run labels (``explorer.runs``; ``tts_prune.power_table`` adds them to a store's frame).
    Columns: the ``by`` keys, ``d``, ``seeds``, ``problems_needed`` (``inf``: not reachable with that
    many seeds), ``records_needed`` (problems x seeds per run and budget), the pilot's components, size and
    ``source``; ``seed_split`` is False when the pilot had one seed (the conservative case above). ``crossed``:
    plan for a seed main effect too (``tts_prune.tts.variance``); the default plans for independent seeds."""
    _check(alpha, power)
    missing = [c for c in ("run", "method", "budget") if c not in df.columns]
    if missing:
        raise ValueError(f"power_table needs columns {missing}; pass explorer.runs(load_results(...)) or use "
                         "tts_prune.power_table, which labels the runs")
    by = [c for c in by if c in df.columns]
    rows = []
    for key, group in df.groupby(by, sort=True):
        pilot, source = _pilot(group, by, crossed)
        for effect in d:
            for s in seeds:
                needed = problems_needed(pilot["var_problem"], pilot["var_seed"], effect, s,
                                         pilot["var_seed_shift"] if crossed else 0.0, alpha, power)
                rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "d": effect, "seeds": s,
                             "problems_needed": needed, "records_needed": needed * s, "power": power,
                             "alpha": alpha, **pilot, "seed_split": pilot["pilot_seeds"] > 1, "source": source})
    return pd.DataFrame(rows)
