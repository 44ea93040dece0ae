"""The new figures draw exactly the numbers of the tables they are given."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.legend  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tts_prune.report import plots  # noqa: E402


def test_sequential_vs_parallel_draws_one_line_per_run_and_mode():
    table = pd.DataFrame({"run": ["dense"] * 3 + ["wanda"] * 2, "tokens": [10, 32, 20, 10, 32],
                          "acc": [0.2, 0.7, 0.4, 0.1, 0.5], "ci_low": 0.0, "ci_high": 1.0,
                          "mode": ["sequential", "sequential", "parallel maj@k", "sequential", "sequential"]})
    fig = plots.sequential_vs_parallel(table)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    # only runs with a parallel probe are compared; the legend names each run once and each style once
    assert set(lines) == {"dense · sequential", "dense · parallel maj@k"}
    assert lines["dense · sequential"].get_xydata().tolist() == [[10, 0.2], [32, 0.7]]
    assert lines["dense · sequential"].get_color() == "black"
    legends = [[t.get_text() for t in legend.get_texts()] for legend in fig.axes[0].findobj(matplotlib.legend.Legend)]
    assert ["dense"] in legends and ["sequential", "sampled, maj@k"] in legends
    # without any parallel probe every run's budget curve is drawn
    fig = plots.sequential_vs_parallel(table[table["mode"] == "sequential"])
    assert {line.get_label() for line in fig.axes[0].lines} == {"dense · sequential", "wanda · sequential"}


def test_divergence_vs_accuracy_points():
    table = pd.DataFrame({"run": ["a", "b"], "budget": [8, 8], "kl_mean": [0.01, 0.5], "diff": [0.0, -0.3],
                          "ci_low": [-0.1, -0.4], "ci_high": [0.1, -0.2]})
    fig = plots.divergence_vs_accuracy(table)
    points = fig.axes[0].lines[0].get_xydata()
    assert np.allclose(points, [[0.01, 0.0], [0.5, -0.3]])
    with pytest.raises(ValueError, match="kl_mean"):
        plots.divergence_vs_accuracy(table.drop(columns="kl_mean"))


def test_diagnostics_boxes_per_run():
    records = pd.DataFrame({"run": ["dense", "dense", "w"], "thinking_tokens": [1, 3, 5], "repetition": [0, 0.5, 0.1],
                            "verify_words": [0, 2, 1]})
    fig = plots.diagnostics(records)
    assert len(fig.axes) == 3 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["dense", "w"]


def test_scaling_curves_draw_each_run_and_keep_a_long_legend_beside_the_axes():
    runs = ["dense"] + [f"{m}/{a}/{s}/toy-reasoning" for m in ("magnitude", "wanda", "sparsegpt")
                        for a in ("uniform", "owl", "layerif") for s in (0.2, 0.5)]  # 19 runs, as a study has
    table = pd.DataFrame([{"run": r, "budget": b, "acc": 0.1 * i + b / 1000, "ci_low": 0.0, "ci_high": 1.0,
                           "benchmark": "toy"} for i, r in enumerate(runs) for b in (8, 64, 256)])
    fig = plots.scaling_curves(table, hue="run", facet="benchmark")
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert set(t.get_text() for t in legend.get_texts()) == set(runs)
    assert len(ax.lines) >= len(runs)
    # the axes keep most of the figure's width: the legend has its own room
    assert ax.get_position().width > 0.45
