"""Figures of the reviewer's statistics (issue 22): fitted scaling curves, failure classes, paired intervals.

Each takes the table of its ``tts_prune.tts`` function and returns a Figure; runs are styled by
``styles.run_styles`` (colour = method, line style = allocation / calibration, marker = sparsity) and legends sit
outside the axes, so a study's 20+ runs stay legible.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..tts.failures import CLASSES
from ..pruning.recipe import plot_order
from ..tts.slopes import curve
from .styles import _require, budget_axis, outside_legend, run_styles

FAILURE_COLORS = {"correct": "#4c9a5b", "right in thinking": "#e3b23c", "capped answer": "#8e6bbf",
                  "no answer, capped thinking": "#d1495b", "no answer, natural stop": "#f28e8e", "wrong": "#9a9a9a"}


def slope_fits(accuracy: pd.DataFrame, slopes: pd.DataFrame, title: str = "") -> plt.Figure:
    """Accuracy per budget (points, 95% CI bars) and each run's fitted ceiling logistic (line) for ONE model and
    benchmark. ``accuracy``: ``explorer.accuracy(df, ["run", "budget"])``; ``slopes``: ``scaling_slopes`` rows.
    The legend gives each run's slope (logit per doubling) with its interval."""
    _require(accuracy, ["run", "budget", "acc"], "slope_fits")
    _require(slopes, ["run", "slope", "slope_low", "slope_high", "reference_budget", "intercept", "ceiling"],
             "slope_fits")
    styles = run_styles(accuracy["run"])
    fig, ax = plt.subplots(figsize=(7.5, max(4.5, 0.19 * len(styles) + 1.2)))
    fitted = slopes.set_index("run")
    for run, part in accuracy.groupby("run", sort=True):
        part, style = part.sort_values("budget"), styles[str(run)]
        positive = part[part["budget"] > 0]
        ax.errorbar(part["budget"], part["acc"], yerr=[part["acc"] - part.get("ci_low", part["acc"]),
                                                       part.get("ci_high", part["acc"]) - part["acc"]],
                    fmt=style["marker"], color=style["color"], markersize=4, capsize=2, alpha=0.7, linestyle="none")
        if run in fitted.index and len(positive):
            row = fitted.loc[run]
            grid = np.geomspace(positive["budget"].min(), positive["budget"].max(), 60)
            label = f"{run}: slope {row['slope']:.2f} [{row['slope_low']:.2f}, {row['slope_high']:.2f}]"
            ax.plot(grid, curve(row, grid), label=label,
                    **{k: v for k, v in style.items() if k not in ("marker", "markersize")})
    budget_axis(ax, accuracy["budget"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy (pass@1)")
    ax.set_title(title or "Fitted scaling curves (logistic in log2 budget, with a ceiling)")
    fig.tight_layout()
    outside_legend(fig, ax, title="run: slope per doubling [95% CI]")
    return fig


def failure_bars(breakdown: pd.DataFrame, title: str = "", columns: int = 4) -> plt.Figure:
    """Stacked share of records per failure class, one bar per budget, one small panel per run (dense first).
    ``breakdown``: ``failure_breakdown`` for one model and benchmark."""
    _require(breakdown, ["run", "budget"] + list(CLASSES), "failure_bars")
    runs = sorted(breakdown["run"].unique(), key=plot_order)
    columns = min(columns, len(runs))
    rows = math.ceil(len(runs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows + 0.8), squeeze=False, sharey=True)
    for ax, run in zip(axes.flat, runs):
        part = breakdown[breakdown["run"] == run].sort_values("budget")
        positions = np.arange(len(part))
        bottom = np.zeros(len(part))
        for name in CLASSES:
            values = part[name].to_numpy(dtype=float)
            ax.bar(positions, values, bottom=bottom, color=FAILURE_COLORS[name], label=name, width=0.8)
            bottom += values
        ax.set_xticks(positions, [str(b) for b in part["budget"]], fontsize=7)
        ax.set_title(str(run), fontsize=8)
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of records")
    for ax in axes[-1]:
        ax.set_xlabel("thinking budget")
    fig.suptitle(title or "Why each record failed, per run and budget", y=1.0)
    fig.tight_layout()
    outside_legend(fig, axes[0][0], title="class")
    return fig


def slope_level_forest(tests: pd.DataFrame, label: str = "label") -> plt.Figure:
    """Pruned - dense change in slope (left) and in level at the reference budget (right), 95% intervals, one row
    per pruned run: the headline of the report (does pruning change what extra thinking buys, or only the level?)."""
    _require(tests, [label, "d_slope", "d_slope_low", "d_slope_high", "d_level", "d_level_low", "d_level_high"],
             "slope_level_forest")
    tests = tests.sort_values("d_slope").reset_index(drop=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.32 * len(tests) + 1.6), sharey=True)
    for ax, name, xlabel in ((axes[0], "slope", "change in slope (logit per doubling)"),
                             (axes[1], "level", "change in accuracy at the reference budget")):
        ax.errorbar(tests[f"d_{name}"], np.arange(len(tests)),
                    xerr=[tests[f"d_{name}"] - tests[f"d_{name}_low"], tests[f"d_{name}_high"] - tests[f"d_{name}"]],
                    fmt="o", color="C0", capsize=2)
        ax.axvline(0, color="grey", linestyle=":")
        ax.set_xlabel(xlabel)
    axes[0].set_yticks(np.arange(len(tests)), tests[label], fontsize=7)
    axes[0].set_title("Does pruning change how much thinking buys?")
    axes[1].set_title("... or only the level?")
    fig.tight_layout()
    return fig
