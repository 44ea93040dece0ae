"""Seaborn figure helpers for the study notebooks: each takes a tidy DataFrame and returns a Figure.

Kept out of the notebooks so that a figure drawn in two places (04's scaling curve and 05's
comparison, 05's explorer and its static fallback) is one function; how they look (run styles, legends, the
budget axis) and ``save_figure`` (PNG and SVG under ``figures/``) are in ``styles``. Accuracy tables are those of ``tts_prune.tts.stats.accuracy_table``: one row per
group with ``acc``, ``ci_low``, ``ci_high`` (95% bootstrap interval).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

# save_figure and run_styles are called as plots.* by the notebooks; the styling lives in .styles
from ..pruning.recipe import DENSE, plot_order
from .styles import _band, _panels_with_legend, _require, budget_axis, outside_legend, run_styles, save_figure  # noqa: F401


def activation_profile(profile: pd.DataFrame) -> plt.Figure:
    """Left: max/median input-feature norm per (layer, linear) as a heatmap (outlier features show as
    hot cells). Right: the block-level OWL outlier ratio per layer. ``profile`` is
    ``tts_prune.activation_profile``'s table."""
    _require(profile, ["layer", "linear", "norm_max_over_median", "layer_outlier_ratio"], "activation_profile")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    grid = profile.pivot_table(index="linear", columns="layer", values="norm_max_over_median")
    # log10: a single massive-activation feature (ratios in the thousands) would otherwise wash out the rest
    sns.heatmap(np.log10(grid.clip(lower=1.0)), ax=left, cmap="rocket_r", cbar_kws={"label": "log10 max / median ||X_j||"})
    left.set_title("Input-feature norm spread per linear")
    per_layer = profile.groupby("layer", as_index=False)["layer_outlier_ratio"].first()
    sns.barplot(per_layer, x="layer", y="layer_outlier_ratio", ax=right, color="C0")
    right.set_title("OWL outlier ratio per block")
    right.set_ylabel("share of Wanda scores > M x mean")
    right.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def allocations(table: pd.DataFrame, target: float | None = None) -> plt.Figure:
    """Per-block sparsity of several allocation strategies; ``table`` has layer, allocation, sparsity."""
    _require(table, ["layer", "allocation", "sparsity"], "allocations")
    fig, ax = plt.subplots(figsize=(10, 4))
    sns.lineplot(table, x="layer", y="sparsity", hue="allocation", style="allocation", markers=True, ax=ax)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:g}")
    ax.set_xlabel("decoder block")
    ax.set_ylabel("sparsity of the block")
    ax.set_title("Layer-wise sparsity allocation")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def block_influence(scores, removed=()) -> plt.Figure:
    """ShortGPT's Block Influence per block (1 - cos(h_in, h_out)); blocks ShortGPT removes in red."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    colors = ["C3" if i in set(removed) else "C0" for i in range(len(scores))]
    ax.bar(range(len(scores)), scores, color=colors)
    ax.set_xlabel("decoder block")
    ax.set_ylabel("Block Influence")
    ax.set_title("ShortGPT Block Influence (red: removed at this sparsity)")
    fig.tight_layout()
    return fig


def layer_sparsity(layers: pd.DataFrame) -> plt.Figure:
    """Target vs achieved sparsity per block (``PruneResult.layers``)."""
    _require(layers, ["layer", "target_sparsity", "achieved_sparsity"], "layer_sparsity")
    long = layers.melt(id_vars="layer", value_vars=["target_sparsity", "achieved_sparsity"], var_name="kind",
                       value_name="sparsity")
    fig, ax = plt.subplots(figsize=(10, 3.5))
    sns.barplot(long, x="layer", y="sparsity", hue="kind", ax=ax)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("Pruning: target and achieved sparsity per block")
    fig.tight_layout()
    return fig


def scaling_curves(table: pd.DataFrame, hue: str = "run", facet: str | None = None, title: str = "") -> plt.Figure:
    """Accuracy vs thinking budget with 95% CI bands, one line per ``hue`` value, one panel per ``facet``."""
    _require(table, ["budget", "acc"] + [hue] + ([facet] if facet else []), "scaling_curves")
    panels = sorted(table[facet].unique()) if facet else [None]
    fig, axes = _panels_with_legend(len(panels), table[hue].nunique())
    for ax, panel in zip(axes[0], panels):
        part = table if panel is None else table[table[facet] == panel]
        _band(ax, part, "budget", hue)
        budget_axis(ax, part["budget"])
        ax.set_ylabel("accuracy (pass@1)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(str(panel) if panel is not None else title or "Test-time scaling")
    axes[0][-1].legend(title=hue, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: curves stay visible
    fig.tight_layout()
    return fig


def thinking_tokens(records: pd.DataFrame, hue: str = "run") -> plt.Figure:
    """"Overthinking": mean thinking tokens used (left, 95% CI band) and share of traces cut at the cap (right)
    vs budget; one style per run (``run_styles``), the legend beside the panels."""
    _require(records, ["budget", "thinking_tokens", "capped", hue], "thinking_tokens")
    data = records.assign(capped=records["capped"].astype(float),
                          thinking_tokens=records["thinking_tokens"].astype(float))
    stats = data.groupby([hue, "budget"]).agg(tokens=("thinking_tokens", "mean"), sem=("thinking_tokens", "sem"),
                                              capped=("capped", "mean")).reset_index()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(4.0, 0.19 * stats[hue].nunique() + 1.2)))
    styles = run_styles(stats[hue])
    for key, part in stats.groupby(hue, sort=True):
        part, style = part.sort_values("budget"), styles[str(key)]
        left.plot(part["budget"], part["tokens"], label=str(key), **style)
        band = 1.96 * part["sem"].fillna(0)
        left.fill_between(part["budget"], part["tokens"] - band, part["tokens"] + band, color=style["color"], alpha=0.1)
        right.plot(part["budget"], part["capped"], **style)
    for ax in (left, right):
        budget_axis(ax, records["budget"])
    left.set_ylabel("thinking tokens used (mean, 95% CI)")
    right.set_ylabel("share hitting the budget cap")
    right.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    outside_legend(fig, left, title=hue)  # beside the panels: it used to sit on the left panel's title and axes
    return fig


def accuracy_vs_sparsity(table: pd.DataFrame, hue: str = "method", facet: str | None = None) -> plt.Figure:
    """Accuracy at the largest budget vs sparsity, one line per ``hue`` (0 = the dense model)."""
    _require(table, ["sparsity", "acc", hue], "accuracy_vs_sparsity")
    panels = sorted(table[facet].unique()) if facet else [None]
    fig, axes = _panels_with_legend(len(panels), table[hue].nunique())
    for ax, panel in zip(axes[0], panels):
        part = table if panel is None else table[table[facet] == panel]
        _band(ax, part, "sparsity", hue)
        ax.set_xlabel("sparsity")
        ax.set_ylabel("accuracy at the largest budget")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(str(panel) if panel is not None else "Accuracy vs sparsity")
    axes[0][-1].legend(title=hue, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def paired_differences(table: pd.DataFrame, label: str = "run", title: str = "") -> plt.Figure:
    """Forest plot: pruned minus dense accuracy with its 95% CI, one row per ``label`` (0 = no change)."""
    _require(table, ["diff", "ci_low", "ci_high", label], "paired_differences")
    table = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.5))
    y = range(len(table))
    ax.errorbar(table["diff"], y, xerr=[table["diff"] - table["ci_low"], table["ci_high"] - table["diff"]],
                fmt="o", color="C0", capsize=3)
    ax.axvline(0, color="grey", linestyle=":")
    ax.set_yticks(list(y), table[label].astype(str).tolist(), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy difference, pruned - dense (95% CI)")
    ax.set_title(title or "Paired pruned-vs-dense differences")
    fig.tight_layout()
    return fig


def sequential_vs_parallel(table: pd.DataFrame, hue: str = "run", title: str = "") -> plt.Figure:
    """Accuracy vs generated tokens per problem: thinking longer (solid, one point per budget) against
    sampling more (dashed: maj@k; dotted: the pass@k oracle) at the same token cost, one colour per ``hue``.
    ``table`` is ``tts_prune.tts.metrics.token_cost_table``'s. Where some runs have a parallel probe, only
    those runs are drawn (the comparison is the point; the others' budget curves are in the scaling figure);
    the legend names each run once and each line style once."""
    from matplotlib.lines import Line2D

    _require(table, ["mode", "tokens", "acc", hue], "sequential_vs_parallel")
    probed = table.loc[table["mode"] != "sequential", hue].unique()
    if len(probed):
        table = table[table[hue].isin(probed)]
    keys = sorted(table[hue].unique(), key=plot_order)
    palette = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colors = {k: "black" if str(k) == DENSE else palette(i % palette.N) for i, k in enumerate(keys)}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = {"sequential": ("-", "o"), "parallel maj@k": ("--", "s"), "parallel pass@k": (":", "^")}
    for key in keys:
        part = table[table[hue] == key]
        for mode, (line, marker) in styles.items():
            rows = part[part["mode"] == mode].sort_values("tokens")
            if rows.empty:
                continue
            ax.plot(rows["tokens"], rows["acc"], linestyle=line, marker=marker, color=colors[key], markersize=4,
                    label=f"{key} · {mode}")
            if {"ci_low", "ci_high"} <= set(rows.columns):
                ax.fill_between(rows["tokens"], rows["ci_low"], rows["ci_high"], color=colors[key], alpha=0.08)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("generated tokens per problem (thinking + answer, all samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or "Think longer or sample more? (equal token cost)")
    runs = [Line2D([], [], color=colors[k], linewidth=2, label=str(k)) for k in keys]
    modes = [Line2D([], [], color="grey", linestyle=line, marker=marker, label=mode.replace("parallel ", "sampled, "))
             for mode, (line, marker) in styles.items() if (table["mode"] == mode).any()]
    first = ax.legend(handles=runs, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=hue)
    ax.add_artist(first)
    ax.legend(handles=modes, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0), title="spent on")
    fig.tight_layout()
    return fig


def diagnostics(records: pd.DataFrame, hue: str = "run",
                columns=("thinking_tokens", "repetition", "verify_words")) -> plt.Figure:
    """Distributions of per-record trace diagnostics (``tts_prune.tts.diagnostics.trace_diagnostics``), one
    box per ``hue`` value, one panel per diagnostic."""
    _require(records, list(columns) + [hue], "diagnostics")
    order = sorted(records[hue].astype(str).unique(), key=plot_order)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 0.35 * len(order) + 2.5), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.boxplot(records.assign(**{hue: records[hue].astype(str)}), x=column, y=hue, order=order, ax=ax,
                    color="C0", fliersize=2)
        ax.set_ylabel("" if ax is not axes[0][0] else hue)
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.tight_layout()
    return fig


def divergence_vs_accuracy(table: pd.DataFrame, hue: str = "budget", label: str = "run") -> plt.Figure:
    """Mean dense-vs-pruned KL on dense traces (x) against the paired accuracy change, pruned - dense (y, 95% CI),
    one point per pruned run and ``hue`` value (budget). A falling cloud means KL predicts TTS damage."""
    _require(table, ["kl_mean", "diff", "ci_low", "ci_high", hue, label], "divergence_vs_accuracy")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, (key, part) in enumerate(table.groupby(hue, sort=True)):
        ax.errorbar(part["kl_mean"], part["diff"], yerr=[part["diff"] - part["ci_low"], part["ci_high"] - part["diff"]],
                    fmt="o", color=f"C{index % 10}", alpha=0.8, capsize=2, label=f"{hue} {key}")
    ax.axhline(0, color="grey", linestyle=":")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("mean KL(dense || pruned) per thinking token (nats)")
    ax.set_ylabel("accuracy change, pruned - dense")
    ax.set_title("Divergence on dense traces vs accuracy change")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def divergence_by_position(table: pd.DataFrame, bins: int = 10, title: str = "") -> plt.Figure:
    """Mean KL(dense || pruned) by relative position in the dense traces (``bins`` equal parts of each trace),
    from ``tts_prune.trace_divergence``'s per-token table. A rising line: the damage accumulates late."""
    _require(table, ["position", "length", "kl"], "divergence_by_position")
    relative = (table["position"] / table["length"].clip(lower=1) * bins).astype(int).clip(upper=bins - 1)
    means = table.groupby(relative)["kl"].agg(["mean", "sem"]).reset_index(names="bin")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    centre = (means["bin"] + 0.5) / bins
    ax.errorbar(centre, means["mean"], yerr=1.96 * means["sem"].fillna(0), fmt="o-", color="C3", capsize=2)
    ax.set_xlabel("relative position in the dense trace")
    ax.set_ylabel("mean KL per token (nats, ±1.96 SE)")
    ax.set_title(title or "Dense-vs-pruned divergence along the trace")
    fig.tight_layout()
    return fig
