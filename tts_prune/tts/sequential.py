"""Add seeds to a cell until its interval is narrow enough: a sequential design with a stated error control.

A study cell (one run on one benchmark) starts with its declared seeds. After each look, ``more_seeds`` reads
the records so far and decides whether to evaluate more seeds, and which. It stops when, at every budget, the
width of the accuracy interval (avg@k over seeds, ``tts_prune.tts.variance``) is at most ``target_ci_width``; or
when more seeds cannot get there (the problem term alone is wider: add problems instead); or when the seeds do
not vary (greedy decoding: every seed gives the same trace); or at ``max_seeds``.

**Error control.** Stopping when an interval looks narrow is a data-dependent choice of which interval to
report, and a plain 95% interval read at a data-chosen look can cover less than 95%. The looks are therefore
declared in advance: one per seed count from the starting count to ``max_seeds``, K of them, and each look's
interval is built at level ``1 - alpha / K`` (Bonferroni over looks). By the union bound the chance that ANY
look's interval misses the true accuracy is at most ``alpha``, so the interval reported at the stop covers with
probability at least ``1 - alpha`` whatever the stopping rule does (the simplest alpha-spending rule; a
Pocock or O'Brien-Fleming boundary would be less conservative, and so would a confidence sequence, Howard et
al., arXiv 1810.08240). The intervals are the t intervals of ``variance.components`` (independent seeds), nominal for
a fixed design; the tests check coverage at the stop by simulation. Skipping looks (adding several seeds at once when
the projection says so) only uses fewer of the K looks, so the bound holds.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .variance import components, grid


def _check(target_ci_width: float, max_seeds: int, alpha: float) -> None:
    if not target_ci_width > 0:
        raise ValueError(f"target_ci_width={target_ci_width} must be > 0 (a width in accuracy units, e.g. 0.1)")
    if max_seeds < 2:
        raise ValueError(f"max_seeds={max_seeds} must be >= 2 for seeds to be added; raise it")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1)")


def looks(start_seeds: int, max_seeds: int) -> int:
    """K, the number of pre-declared looks: one per seed count from ``start_seeds`` to ``max_seeds``."""
    return max(1, max_seeds - start_seeds + 1)


def _projected_width(fit, seeds: int, level: float) -> float:
    # the same components at another seed count, with the normal quantile (df unknown before the data)
    var = fit.var_problem / fit.problems + fit.var_seed / (fit.problems * seeds)
    return float(2 * sps.norm.ppf(0.5 + level / 2) * np.sqrt(var))


def decide(grids: dict, target_ci_width: float, max_seeds: int, start_seeds: int, alpha: float = 0.05) -> dict:
    """The rule on (problems, seeds) grade grids, one per group (budget): ``stop``, ``reason``, ``add`` (how many
    seeds to add), ``width`` (the widest interval, at this look's level ``level`` = 1 - alpha/K) and ``table``."""
    _check(target_ci_width, max_seeds, alpha)
    fits = {key: components(matrix) for key, matrix in grids.items()}
    count = min(f.seeds for f in fits.values())
    level = 1 - alpha / looks(start_seeds, max_seeds)
    table = pd.DataFrame([{"group": key, "avg_at_k": f.mean, "ci_low": f.interval(level)[0],
                           "ci_high": f.interval(level)[1], "seeds": f.seeds} for key, f in fits.items()])
    table["width"] = table["ci_high"] - table["ci_low"]
    width = float(table["width"].max())
    decision = {"seeds": count, "level": level, "width": width, "table": table, "add": 0}

    def stop(reason):
        return {**decision, "stop": True, "reason": reason}

    if width <= target_ci_width:
        return stop(f"every interval is at most {target_ci_width:g} wide ({width:.3f})")
    if count >= max_seeds:
        return stop(f"max_seeds={max_seeds} reached; widest interval {width:.3f} > {target_ci_width:g}")
    if count > 1 and all(f.var_seed == 0 for f in fits.values()):
        return stop("the seeds do not vary (every seed grades every problem alike, e.g. greedy decoding)")
    floor = max(_projected_width(f, 10 ** 9, level) for f in fits.values())
    if floor >= target_ci_width:
        return stop(f"more seeds cannot reach {target_ci_width:g}: the problem term alone gives {floor:.3f}; "
                    "evaluate more problems instead")
    # the fewest seeds the current components project to be enough, at least one more, at most max_seeds
    wanted = next((s for s in range(count + 1, max_seeds + 1)
                   if max(_projected_width(f, s, level) for f in fits.values()) <= target_ci_width), max_seeds)
    return {**decision, "stop": False, "add": wanted - count,
            "reason": f"widest interval {width:.3f} > {target_ci_width:g}; {wanted} seeds projected to suffice"}


def more_seeds(records: pd.DataFrame, target_ci_width: float, max_seeds: int, start_seeds: int | None = None,
               alpha: float = 0.05, by: Sequence[str] = ("budget",)) -> dict:
    """``decide`` on a cell's records so far (one run and benchmark; its budgets are the groups ``by``), plus
    ``next_seeds``: the seed values to evaluate next (the next unused integers; [] at a stop).
    ``start_seeds``: the seed count the cell started with (default: the count so far, i.e. the first look)."""
    seen = sorted(pd.unique(records["seed"]).tolist())
    grids = {key: grid(group) for key, group in records.groupby(list(by), sort=True)}
    decision = decide(grids, target_ci_width, max_seeds, start_seeds or len(seen), alpha)
    return {**decision, "next_seeds": list(range(max(seen) + 1, max(seen) + 1 + decision["add"]))}


def seeds_until_precise(evaluate_seeds: Callable[[list], pd.DataFrame], seeds: Sequence[int], target_ci_width: float,
                        max_seeds: int, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate ``seeds``, then more, as ``more_seeds`` asks. ``evaluate_seeds(seed list)`` returns the records of
    those seeds (``tts_prune.evaluate`` with ``seeds=...``: it skips what the store already holds). Returns the
    records of every seed used and one row per look (seeds, level, widest interval, decision, reason)."""
    seeds = list(dict.fromkeys(seeds))
    records = evaluate_seeds(seeds)
    log = []
    while True:
        decision = more_seeds(records, target_ci_width, max_seeds, start_seeds=len(seeds), alpha=alpha)
        log.append({k: decision[k] for k in ("seeds", "level", "width", "stop", "reason")})
        if decision["stop"]:
            return records, pd.DataFrame(log)
        records = pd.concat([records, evaluate_seeds(decision["next_seeds"])], ignore_index=True)
