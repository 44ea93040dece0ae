"""The claims a study's records support, and those they cannot: a table written from the data, read first.

Two families of paired pruned-vs-dense tests, each over every pruned run of every model and benchmark:

- **accuracy** at the largest budget: avg@k difference on the same problems and seeds, t interval and test of
  the nested problems/seeds model (``tts_prune.tts.variance.paired_variance``);
- **slope**: change in the fitted logit slope per doubling of the budget, the paper's question "does pruning
  change how much extra thinking buys?" (``tts_prune.tts.slopes.slope_tests``, paired problem bootstrap).

Holm's adjustment runs within each family (``tts_prune.tts.multiplicity``). Each row gets a verdict:

- ``supported``: the Holm-adjusted p-value is at most ``alpha``;
- ``no difference beyond ±margin``: not significant, and the whole 95% interval lies within ±``margin``
  (an equivalence statement, two one-sided tests at 2.5% each);
- ``cannot tell``: not significant, and the interval is too wide to exclude a difference of ``margin``; the
  ``mdd`` column (smallest difference detectable at 80% power, ``tts_prune.tts.power``) says how large a
  difference the run could have seen. "No significant difference" is never printed without it.
"""
from __future__ import annotations

import pandas as pd
from scipy import stats as sps

from ..tts.multiplicity import adjust_pvalues

VERDICTS = ("supported", "no difference beyond ±margin", "cannot tell")
COLUMNS = ["claim", "quantity", "estimate", "ci_low", "ci_high", "test", "p_value", "p_holm", "mdd", "verdict"]


def _verdict(table: pd.DataFrame, alpha: float, margin: float) -> pd.Series:
    equivalent = (table["ci_low"] >= -margin) & (table["ci_high"] <= margin)
    verdict = pd.Series("cannot tell", index=table.index, dtype=object)
    verdict[equivalent] = f"no difference beyond ±{margin:g}"
    verdict[table["p_holm"] <= alpha] = "supported"
    return verdict


def _family(table: pd.DataFrame, alpha: float, margin: float) -> pd.DataFrame:
    if table.empty:
        return table
    table = table.assign(p_holm=adjust_pvalues(table["p_value"].to_numpy(float), "holm"))
    return table.assign(verdict=_verdict(table, alpha, margin))


def accuracy_claims(df: pd.DataFrame, alpha: float = 0.05, margin: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Accuracy family: one row per pruned run at its (model, benchmark)'s largest budget."""
    from ..tts.variance import paired_variance
    from .explorer import at_largest_budget

    paired = paired_variance(at_largest_budget(df), alpha=alpha, power=power)
    if paired.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = [{"claim": f"{r.model} · {r.benchmark} · {r.run} vs dense: accuracy at budget {r.budget}",
             "quantity": "accuracy difference", "estimate": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
             "test": f"paired t, problems x seeds ({r.problems} x {r.seeds}, df {r.df:.0f})", "p_value": r.p_value,
             "mdd": r.mdd} for r in paired.itertuples()]
    return _family(pd.DataFrame(rows), alpha, margin)


def slope_claims(df: pd.DataFrame, alpha: float = 0.05, margin: float = 0.25, power: float = 0.8,
                 n_boot: int = 200, tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """Slope family: one row per pruned run with a dense baseline and two budgets or more (``tests``: a
    ``slope_tests`` table already computed, else it is computed here with ``n_boot`` replicates)."""
    from ..tts.slopes import slope_tests

    tests = slope_tests(df, n_boot=n_boot) if tests is None else tests
    if tests.empty:
        return pd.DataFrame(columns=COLUMNS)
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    rows = []
    for r in tests.itertuples():
        se = (r.d_slope_high - r.d_slope_low) / (2 * sps.norm.ppf(0.975))   # the bootstrap interval's width
        rows.append({"claim": f"{r.model} · {r.benchmark} · {r.run} vs dense: gain per doubling of the budget",
                     "quantity": "slope difference (logit per doubling)", "estimate": r.d_slope,
                     "ci_low": r.d_slope_low, "ci_high": r.d_slope_high,
                     "test": "paired problem bootstrap of the ceiling-logistic fit (Wald)", "p_value": r.p_slope,
                     "mdd": z * se})
    return _family(pd.DataFrame(rows), alpha, margin)


def claims_table(df: pd.DataFrame, alpha: float = 0.05, margin: float = 0.05, slope_margin: float = 0.25,
                 power: float = 0.8, slope_tests: pd.DataFrame | None = None, n_boot: int = 200) -> pd.DataFrame:
    """Both families, supported claims first, then equivalences, then what the run cannot tell (by p-value).
    ``df``: ``explorer.runs(load_results(...))``."""
    table = pd.concat([accuracy_claims(df, alpha, margin, power),
                       slope_claims(df, alpha, slope_margin, power, n_boot, slope_tests)], ignore_index=True)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    rank = table["verdict"].map(lambda v: 0 if v == "supported" else (2 if v == "cannot tell" else 1))
    ordered = table.assign(_rank=rank).sort_values(["_rank", "p_holm"])
    return ordered[COLUMNS].reset_index(drop=True)


def summary(table: pd.DataFrame) -> str:
    """One sentence: how many claims are supported, shown equivalent, or undecided."""
    if table.empty:
        return "No pruned run has a dense baseline on the same problems yet: no claim can be tested."
    counts = table["verdict"].map(lambda v: "equivalent" if v.startswith("no difference") else v).value_counts()
    return (f"{len(table)} tested claims: {counts.get('supported', 0)} supported after Holm, "
            f"{counts.get('equivalent', 0)} shown to be no larger than the margin, "
            f"{counts.get('cannot tell', 0)} that these records cannot decide (see their MDD).")
