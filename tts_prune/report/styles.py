"""How every study figure looks and is saved: run styles (colour = method, line style = allocation, marker =
sparsity), legends outside the axes, the budget axis, CI bands, and ``save_figure`` (PNG + SVG under ``figures/``).

The figures themselves are in ``plots`` (curves, tokens, layers), ``stat_plots`` (the reviewer's statistics)
and use these helpers, so 20+ runs look the same in every notebook.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .. import paths
from ..pruning.recipe import DENSE

sns.set_theme(style="whitegrid", context="notebook")
FORMATS = ("png", "svg")


def save_figure(fig: plt.Figure, name: str, directory: str | Path | None = None) -> list[Path]:
    """Write ``fig`` as ``<directory>/<name>.png`` and ``.svg`` (directory defaults to figures/)."""
    directory = paths.ensure(Path(directory) if directory else paths.FIGURES_DIR)
    written = []
    for fmt in FORMATS:
        target = directory / f"{name}.{fmt}"
        fig.savefig(target, dpi=120, bbox_inches="tight")
        written.append(target)
    return written


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {list(columns)}; missing {missing} (have {list(df.columns)}). "
                         "Pass the table the docstring names.")


METHOD_ORDER = ("magnitude", "wanda", "sparsegpt", "shortgpt")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)), (0, (3, 1, 1, 1)))
MARKERS = "osD^vP*X"


def _run_parts(label: str) -> tuple[str, str, str]:
    """(method, allocation + calibration, sparsity) of an ``explorer.runs`` label
    (``method/allocation/sparsity[ (removed x%)][/calibration]``); other labels are their own method."""
    parts = str(label).split(" (removed")[0].split("/") + [""] * 3
    tail = str(label).split(")", 1)[1] if " (removed" in str(label) else ""
    return parts[0], "/".join(p for p in [parts[1], tail.strip("/")] + parts[3:] if p), parts[2]


def run_styles(labels) -> dict:
    """Matplotlib style per run label, so 20+ runs stay apart: colour = method (dense: thick black),
    line style = allocation (and calibration source), marker = sparsity. Labels that are not run labels
    (a hue of budgets, recipes) get one colour each."""
    labels = list(dict.fromkeys(str(x) for x in labels))
    parsed = {label: _run_parts(label) for label in labels}
    methods = sorted({m for m, _, _ in parsed.values() if m != DENSE},
                     key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    palette = plt.get_cmap("tab10")
    lines = sorted({a for _, a, _ in parsed.values()})
    marks = sorted({s for _, _, s in parsed.values()})
    styles = {}
    for label, (method, allocation, sparsity) in parsed.items():
        dense = method == DENSE
        styles[label] = dict(color="black" if dense else palette(methods.index(method) % 10),
                             linestyle="-" if dense else LINESTYLES[lines.index(allocation) % len(LINESTYLES)],
                             marker="o" if dense else MARKERS[marks.index(sparsity) % len(MARKERS)],
                             linewidth=2.5 if dense else 1.5, zorder=3 if dense else 2, markersize=4)
    return styles


def _band(ax, table: pd.DataFrame, x: str, hue: str | None, y: str = "acc") -> None:
    groups = list(table.groupby(hue, sort=True)) if hue else [(None, table)]
    styles = run_styles([key for key, _ in groups])
    for key, group in groups:
        group = group.sort_values(x)
        label = None if key is None else str(key)
        style = styles[str(key)]
        ax.plot(group[x], group[y], label=label, **style)
        if {"ci_low", "ci_high"} <= set(group.columns):
            ax.fill_between(group[x], group["ci_low"], group["ci_high"], color=style["color"], alpha=0.10)


def outside_legend(fig: plt.Figure, ax, title: str = "", **kwargs) -> None:
    """The legend of ``ax``'s lines to the right of the whole figure: it never covers an axis or a title."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, title=title, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                   frameon=False, **kwargs)


def budget_axis(ax, budgets) -> None:
    """Log2 budget axis; with a budget-0 point (no thinking) a symlog axis, linear below the smallest budget."""
    values = pd.to_numeric(pd.Series(list(budgets)), errors="coerce").dropna()
    positive = values[values > 0]
    if (values == 0).any() and not positive.empty:
        ax.set_xscale("symlog", base=2, linthresh=float(positive.min()))
    else:
        ax.set_xscale("log", base=2)
    ax.set_xlabel("thinking budget (tokens)")


def _panels_with_legend(panels: int, entries: int, width: float = 5.5, height: float = 4.0):
    """A row of ``panels`` axes plus room on the right for a legend of ``entries`` lines, so a long legend
    (a study's 20 runs) sits beside the curves instead of shrinking them."""
    legend_width = 0.0 if entries <= 1 else 3.6 + 0.06 * min(entries, 40)
    fig, axes = plt.subplots(1, panels, figsize=(width * panels + legend_width, max(height, 0.19 * entries + 1.2)),
                             squeeze=False, sharey=True)
    return fig, axes
