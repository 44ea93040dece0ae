"""05-report's analyses beyond accuracy curves: every pruned run against the dense one of its model and benchmark.

Each function takes the tidy frame of ``explorer.runs`` (one row per record, with ``run``, ``method``,
``calibration``, ``calibration_seed``) and returns a table for the notebook to show and plot:
``overthinking_vs_dense`` (paired thinking-length test at equal correctness, ``tts_prune.tts.diagnostics``),
``divergence_vs_dense`` (04's KL summaries beside the paired accuracy change), ``calibration_comparison``
(accuracy by calibration source) and ``calibration_seed_spread`` (accuracy by calibration seed: the variance
that pruning itself adds, which sampling seeds alone do not show).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..pruning.recipe import DENSE  # the unpruned baseline, named once (pruning/recipe.py)
KEYS = ("model", "benchmark")


def _pruned_with_dense(df: pd.DataFrame, keys=KEYS):
    # (key values, run, pruned records, dense records) for every pruned run that has a dense baseline
    dense = df[df["method"] == DENSE]
    for group_key, pruned in df[df["method"] != DENSE].groupby(list(keys) + ["run"]):
        match = dense
        for key, value in zip(keys, group_key):
            match = match[match[key] == value]
        if not match.empty:
            yield dict(zip(list(keys) + ["run"], group_key)), pruned, match


def overthinking_vs_dense(df: pd.DataFrame, keys=KEYS, **kwargs) -> pd.DataFrame:
    """Per pruned run: pruned minus dense thinking tokens on (problem, seed, budget) where both are correct,
    pooled over budgets (``tts_prune.overthinking_test``); runs with no such pair are left out."""
    from ..tts.diagnostics import overthinking_test

    rows = []
    for labels, pruned, dense in _pruned_with_dense(df, keys):
        try:
            rows.append({**labels, **overthinking_test(pruned, dense, **kwargs)})
        except ValueError:
            continue  # no record where both are correct: nothing to compare at equal correctness
    return pd.DataFrame(rows)


def read_divergences(artifacts_root) -> pd.DataFrame:
    """Every ``divergence.json`` that 04-tts-scaling wrote under ``artifacts_root``: one per benchmark of each pruned
    04 cell (``04-tts-scaling/<cell>/<benchmark>/divergence.json``; each names its model, benchmark and recipe)."""
    found = sorted(Path(artifacts_root).glob("04-tts-scaling/**/divergence.json"))
    return pd.DataFrame([json.loads(p.read_text()) for p in found])


def divergence_vs_dense(df: pd.DataFrame, divergences: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Mean KL per (model, benchmark, run), averaged over calibration seeds, beside ``paired``
    (``explorer.paired_vs_dense``: accuracy change per budget). One row per (model, benchmark, run, budget)."""
    if divergences.empty or paired.empty:
        return pd.DataFrame()
    recipe = ["method", "allocation", "sparsity", "calibration"]
    divergences = divergences.assign(sparsity=pd.to_numeric(divergences["sparsity"]).round(4))
    for column in recipe:
        if column not in divergences.columns:
            divergences[column] = None
    labels = df[df["method"] != DENSE][list(KEYS) + recipe + ["run"]].drop_duplicates()
    joined = divergences.merge(labels, on=list(KEYS) + recipe, how="inner")
    kl = joined.groupby(list(KEYS) + ["run"], as_index=False)["kl_mean"].mean()
    return paired.merge(kl, on=list(KEYS) + ["run"], how="inner")


def calibration_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy at each (model, benchmark)'s largest budget per pruned recipe and calibration source, with the
    paired difference of every source from the first one listed (same problems and seeds)."""
    from ..tts.stats import paired_difference
    from .explorer import accuracy, at_largest_budget

    pruned = at_largest_budget(df)
    pruned = pruned[pruned["method"] != DENSE].assign(calibration=lambda f: f["calibration"].fillna("?"))
    if pruned["calibration"].nunique() < 2:
        return pd.DataFrame()
    table = accuracy(pruned, list(KEYS) + ["method", "allocation", "sparsity", "calibration"])
    rows = []
    for key, group in pruned.groupby(list(KEYS) + ["method", "allocation", "sparsity"]):
        sources = list(dict.fromkeys(group["calibration"]))
        for other in sources[1:]:
            result = paired_difference(group[group["calibration"] == other], group[group["calibration"] == sources[0]])
            rows.append({**dict(zip(list(KEYS) + ["method", "allocation", "sparsity"], key)),
                         "calibration": other, "vs": sources[0], "delta": result["diff"],
                         "delta_low": result["ci_low"], "delta_high": result["ci_high"],
                         "delta_p": result["p_value"], "pairs": result["n"]})
    return table.merge(pd.DataFrame(rows), on=list(KEYS) + ["method", "allocation", "sparsity", "calibration"],
                       how="left") if rows else table


def calibration_seed_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Per pruned run and budget with several calibration seeds: accuracy under each seed, their mean, standard
    deviation and range. Pruning's own randomness (which calibration windows) shows here."""
    pruned = df[df["method"] != DENSE]
    if pruned.empty or pruned["calibration_seed"].nunique() < 2:
        return pd.DataFrame()
    per_seed = (pruned.groupby(list(KEYS) + ["run", "budget", "calibration_seed"])["correct"].mean()
                .rename("acc").reset_index())
    spread = per_seed.groupby(list(KEYS) + ["run", "budget"])["acc"].agg(
        calibration_seeds="size", acc_mean="mean", acc_std=lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        acc_min="min", acc_max="max")
    return spread.reset_index()
