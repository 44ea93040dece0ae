"""05-report's tables, computed here so the notebook stays parameters, a few calls and prose.

Each function takes the labelled frame of ``explorer.runs`` (and, where a section needs them, 03/04's artifacts)
and returns the table a section shows; the figures are drawn from these tables by ``plots`` / ``stat_plots``.
"""
from __future__ import annotations

import pandas as pd

from . import explorer
from .provenance import DENSE, read_pruning_summaries

PROVENANCE_UNRECORDED = "unrecorded"  # records from before the backend and weights fingerprint were stored


def overview(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, benchmark, run): problems, budgets, seeds, records, accuracy and no-answer share."""
    return (df.groupby(["model", "benchmark", "run"])
            .agg(problems=("problem_id", "nunique"), budgets=("budget", "nunique"), seeds=("seed", "nunique"),
                 records=("correct", "size"), accuracy=("correct", "mean"), no_answer=("no_answer", "mean"))
            .reset_index())


def _joined(values) -> str:
    return ", ".join(sorted(set(map(str, values))))


def weights_provenance(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, run): the backends and weight fingerprints (``model_hash``) that generated its records, mean
    thinking tokens, capped and no-answer shares, and ``same_weights_as_dense`` (a pruned run whose records carry
    exactly the dense run's fingerprints: it was generated from the dense model)."""
    known = df.assign(**{c: df[c] if c in df.columns else PROVENANCE_UNRECORDED for c in ("backend", "model_hash")})
    table = (known.groupby(["model", "run"])
             .agg(backend=("backend", _joined), weights=("model_hash", _joined),
                  thinking_tokens=("thinking_tokens", "mean"), capped=("capped", "mean"), no_answer=("no_answer", "mean"))
             .reset_index())
    dense = table[table["run"] == DENSE].set_index("model")["weights"]
    table["same_weights_as_dense"] = [run != DENSE and dense.get(model) == weights
                                      for model, run, weights in table[["model", "run", "weights"]].itertuples(index=False)]
    return table


def sparsity_lines(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(by_sparsity, lines)`` at each (model, benchmark)'s largest budget: accuracy per method x allocation x
    calibration source x sparsity (sources are never pooled), and the lines to draw, each pruned recipe starting
    from its (model, benchmark)'s dense point; ``recipe`` names a line (``method/allocation``, plus the source
    where a model was pruned with several)."""
    top = explorer.at_largest_budget(df)
    top = top.assign(calibration=top["calibration"].fillna("") if "calibration" in top.columns else "")
    recipe_keys = ["model", "benchmark", "method", "allocation", "calibration"]
    by_sparsity = explorer.accuracy(top, recipe_keys + ["sparsity"])
    dense = by_sparsity[by_sparsity["method"] == DENSE]
    pruned = by_sparsity[by_sparsity["method"] != DENSE]
    starts = dense.drop(columns=["method", "allocation", "calibration"]).merge(
        pruned[recipe_keys].drop_duplicates(), on=["model", "benchmark"])
    lines = pd.concat([pruned, starts])
    several = pruned.groupby("model")["calibration"].nunique()
    lines["recipe"] = [f"{m}/{a}/{c}" if several.get(model, 1) > 1 else f"{m}/{a}"
                       for model, m, a, c in lines[["model", "method", "allocation", "calibration"]].itertuples(index=False)]
    return by_sparsity, lines


def paired_with_mdd(df: pd.DataFrame, variance_paired: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``explorer.paired_vs_dense`` with ``significant`` (p < ``alpha``) and a ``reading``: "significant", or "no
    significant difference" always with the smallest difference the comparison could have detected (the MDD of
    ``tts_prune.paired_variance``, the ``variance_paired`` table). Empty when no pruned run has a dense baseline."""
    paired = explorer.paired_vs_dense(df)
    if paired.empty:
        return paired
    paired["significant"] = paired["p_value"] < alpha
    mdd = variance_paired[["model", "benchmark", "budget", "run", "mdd"]] if not variance_paired.empty else \
        pd.DataFrame(columns=["model", "benchmark", "budget", "run", "mdd"])
    paired = paired.merge(mdd, how="left")
    paired["reading"] = ["significant" if s else f"no significant difference (MDD {m:.2f})"
                         for s, m in zip(paired["significant"], paired["mdd"])]
    return paired


def labelled(table: pd.DataFrame, slug=str) -> pd.DataFrame:
    """``table`` with ``label`` = "model · benchmark · run" (the model through ``slug``, e.g. ``study.grid.slug``)."""
    return table.assign(label=table["model"].map(slug) + " · " + table["benchmark"] + " · " + table["run"])


def perplexity_table(artifacts_root) -> pd.DataFrame:
    """03-pruning's perplexity before and after, one row per saved recipe (its ``pruning.json``)."""
    table = read_pruning_summaries(artifacts_root)
    columns = ["model", "method", "allocation", "sparsity", "achieved_sparsity", "ppl_dense", "ppl_pruned", "ppl_ratio"]
    return table[columns] if not table.empty else table


def token_costs(df: pd.DataFrame, probe: pd.DataFrame | None) -> pd.DataFrame:
    """``tts_prune.token_cost_table`` per (model, benchmark), by run: the sequential budgets of ``df`` and, where
    04's parallel probe (``probe``, sampled seeds at one budget) has records of the same model and benchmark, maj@k
    and pass@k over its samples; one frame with ``model`` and ``benchmark`` columns."""
    from ..tts.metrics import token_cost_table

    costs = []
    for (model, benchmark), part in df.groupby(["model", "benchmark"]):
        sampled = None
        if probe is not None and not probe.empty:
            sampled = probe[(probe["model"] == model) & (probe["benchmark"] == benchmark)]
        costs.append(token_cost_table(part, sampled, by=["run"]).assign(model=model, benchmark=benchmark))
    return pd.concat(costs, ignore_index=True) if costs else pd.DataFrame()


def spearman_by_budget(divergence: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho (and p) between KL(dense || pruned) and the accuracy change, per budget with > 2 runs."""
    from scipy.stats import spearmanr

    rows = [(budget, *spearmanr(g["kl_mean"], g["diff"])) for budget, g in divergence.groupby("budget") if len(g) > 2]
    return pd.DataFrame(rows, columns=["budget", "spearman_rho", "p_value"])
