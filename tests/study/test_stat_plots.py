"""Figures stay legible with a study's 20 runs: styles follow the recipe, legends never cover an axis."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tts_prune.report import plots, stat_plots  # noqa: E402
from tts_prune.tts.failures import CLASSES  # noqa: E402

RUNS = ["dense"] + [f"{m}/{a}/{s}" for m in ("magnitude", "wanda", "sparsegpt") for a in ("uniform", "owl", "layerif")
                    for s in (0.2, 0.5)] + ["wanda/owl/0.5/self-traces", "shortgpt/uniform/0.2 (removed 18.8%)"]


def _legend_clear_of_axes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_tightbbox(renderer)), "a legend covers an axis or its title"


def test_run_styles_colour_by_method_line_by_allocation_marker_by_sparsity():
    styles = plots.run_styles(RUNS)
    assert styles["dense"]["color"] == "black" and styles["dense"]["linewidth"] > styles["wanda/owl/0.2"]["linewidth"]
    assert styles["wanda/owl/0.2"]["color"] == styles["wanda/uniform/0.5"]["color"]
    assert styles["wanda/owl/0.2"]["color"] != styles["magnitude/owl/0.2"]["color"]
    assert styles["wanda/owl/0.2"]["linestyle"] == styles["magnitude/owl/0.5"]["linestyle"]
    assert styles["wanda/owl/0.2"]["linestyle"] != styles["wanda/layerif/0.2"]["linestyle"]
    assert styles["wanda/owl/0.5/self-traces"]["linestyle"] != styles["wanda/owl/0.5"]["linestyle"]  # calibration
    assert styles["wanda/owl/0.2"]["marker"] != styles["wanda/owl/0.5"]["marker"]
    keys = {(str(s["color"]), str(s["linestyle"]), s["marker"]) for s in styles.values()}
    assert len(keys) == len(RUNS)  # every run is told apart


def test_thinking_tokens_legend_sits_beside_the_panels():
    rows = [{"run": r, "budget": b, "thinking_tokens": b * (0.5 + i / 40), "capped": i % 2}
            for i, r in enumerate(RUNS) for b in (8, 64, 256) for _ in range(3)]
    fig = plots.thinking_tokens(pd.DataFrame(rows))
    assert len(fig.legends[0].get_texts()) == len(RUNS)
    _legend_clear_of_axes(fig)


def test_slope_fits_and_failure_bars():
    acc = pd.DataFrame([{"run": r, "budget": b, "acc": min(1, 0.1 + i / 30 + np.log2(b) / 20), "ci_low": 0.0,
                         "ci_high": 1.0} for i, r in enumerate(RUNS) for b in (8, 16, 64, 256)])
    fits = pd.DataFrame([{"run": r, "slope": 0.5, "slope_low": 0.2, "slope_high": 0.8, "reference_budget": 45.0,
                          "intercept": 0.0, "ceiling": 0.9} for r in RUNS])
    fig = stat_plots.slope_fits(acc, fits)
    ax = fig.axes[0]
    assert len([line for line in ax.lines if line.get_label() and not line.get_label().startswith("_")]) == len(RUNS)
    _legend_clear_of_axes(fig)
    shares = pd.DataFrame([{"run": r, "budget": b, **{c: 1 / len(CLASSES) for c in CLASSES}}
                           for r in RUNS[:6] for b in (8, 64)])
    fig = stat_plots.failure_bars(shares)
    tops = [patch.get_y() + patch.get_height() for patch in fig.axes[0].patches]
    assert max(tops) == pytest.approx(1.0)  # the classes stack to 1
    _legend_clear_of_axes(fig)
