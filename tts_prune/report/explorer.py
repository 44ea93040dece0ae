"""The report's view of the results store: tidy runs, comparisons, and an ipywidgets explorer.

``runs`` turns evaluation records into one row per (problem, budget, seed) with the pruning recipe
spread into ``method`` / ``allocation`` / ``sparsity`` columns and a readable ``run`` label.
``explorer`` is a set of dropdowns (model, benchmark, method, allocation, sparsity) that redraw the
scaling curve from the store; executed by papermill its widget state is saved, and ``static=True``
also draws every (model, benchmark) panel as plain figures so a rendered HTML without widget
scripts still shows them.
"""
from __future__ import annotations

import pandas as pd

from ..pruning.recipe import DENSE, plot_order, run_label
from . import plots

FIELDS = ("model", "benchmark", "method", "allocation", "sparsity")
RECIPE_FIELDS = ("method", "allocation", "sparsity")


def _recipe_value(recipe, key):
    if isinstance(recipe, dict):
        return recipe.get(key)
    return None


LEGACY_PROTOCOL = "kit-legacy"  # records graded before protocols were recorded (answer only, no forced cue)


def record_protocol(grading) -> str:
    """A record's grading protocol from its ``grading`` field (``kit-legacy`` for records that name none)."""
    return grading.get("protocol", LEGACY_PROTOCOL) if isinstance(grading, dict) else LEGACY_PROTOCOL


def runs(records: pd.DataFrame, protocol: str | None = None) -> pd.DataFrame:
    """Records with ``method``, ``allocation``, ``sparsity`` (dense: "dense", "uniform", 0.0), ``run`` and
    ``protocol`` (the grading protocol). ``protocol`` keeps only that protocol's records: a run graded under
    two protocols has two records per (problem, budget, seed), which no accuracy or paired test may pool."""
    if records.empty:
        raise ValueError("the results store holds no records; run 04-tts-scaling (or `make study`) first")
    df = records.copy()
    df["protocol"] = df["grading"].map(record_protocol) if "grading" in df.columns else LEGACY_PROTOCOL
    if protocol is not None:
        df = df[df["protocol"] == protocol].copy()
        if df.empty:
            raise ValueError(f"no record is graded under protocol {protocol!r}; the store holds "
                             f"{sorted(set(records['grading'].map(record_protocol)) if 'grading' in records else [])}. "
                             "Rerun 04-tts-scaling with that `grading` (stored generations are regraded, not generated "
                             "again), or name one of those")
    for key in RECIPE_FIELDS:
        flat = next((c for c in (key, f"recipe.{key}", f"recipe_{key}") if c in df.columns), None)
        from_recipe = df["recipe"].map(lambda r: _recipe_value(r, key)) if "recipe" in df.columns else None
        values = df[flat] if flat is not None else from_recipe
        if flat is not None and from_recipe is not None:
            values = values.where(values.notna(), from_recipe)
        df[key] = values if values is not None else None
    df["method"] = df["method"].fillna(DENSE).replace({"": DENSE, "none": DENSE})
    df["allocation"] = df["allocation"].fillna("uniform")
    df["sparsity"] = pd.to_numeric(df["sparsity"], errors="coerce").fillna(0.0).round(4)
    df.loc[df["method"] == DENSE, ["allocation", "sparsity"]] = ["uniform", 0.0]
    # ShortGPT removes whole blocks: round(s x L) of L rarely equals s, so its label says what was removed; by
    # block count (the authors' grid) its sparsity column is the share of decoder parameters removed, so
    # accuracy-vs-sparsity places it where it really is. The label itself is pruning.recipe's run_label.
    recipes = df["recipe"] if "recipe" in df.columns else pd.Series(None, index=df.index)
    removed = [_recipe_value(r, "removed_param_fraction") for r in recipes]
    counts = [_recipe_value(r, "shortgpt_layers") for r in recipes]
    df["run"] = [run_label(m, a, s, f, n) for m, a, s, f, n in zip(df["method"], df["allocation"], df["sparsity"],
                                                                   removed, counts)]
    for i, (n, f) in enumerate(zip(counts, removed)):
        if n and df["method"].iat[i] != DENSE and f is not None and f == f:
            df.iat[i, df.columns.get_loc("sparsity")] = round(float(f), 4)
    # Calibration (a study axis): named in the run label only when pruned runs differ in it. Calibration seeds
    # are replicates of one run, like sampling seeds: they share its label and pool into its statistics.
    df["calibration"] = [_recipe_value(r, "calibration") if m != DENSE else None for r, m in zip(recipes, df["method"])]
    df["calibration_seed"] = [int(_recipe_value(r, "calibration_seed") or 0) for r in recipes]
    # Named where one recipe ran with several sources, not where methods merely calibrate on their own text
    # (paper.yaml: ShortGPT on its PG19 text, the others on C4).
    recipe_keys = [k for k in ("model", "method", "allocation", "sparsity") if k in df.columns]  # >= 3 keys: tuples
    varied = df[df["method"] != DENSE].groupby(recipe_keys)["calibration"].nunique()
    several = set(varied[varied > 1].index)
    keys = zip(*(df[k] for k in recipe_keys))
    df["run"] = [f"{r}/{c}" if m != DENSE and k in several else r
                 for r, m, c, k in zip(df["run"], df["method"], df["calibration"], keys)]
    df["correct"] = df["correct"].astype(float)
    # Share of responses with nothing extractable (records written before it was recorded: unknown).
    df["no_answer"] = df["no_answer"].astype(float) if "no_answer" in df.columns else float("nan")
    return df


def accuracy(df: pd.DataFrame, by) -> pd.DataFrame:
    """``tts_prune.tts.stats.accuracy_table`` over ``by`` (acc, ci_low, ci_high: 95% bootstrap over problems and seeds)."""
    from ..tts.stats import accuracy_table

    return accuracy_table(df, by=list(by)).reset_index()


def at_largest_budget(df: pd.DataFrame) -> pd.DataFrame:
    """Only the records at each (model, benchmark)'s largest budget."""
    top = df.groupby(["model", "benchmark"])["budget"].transform("max")
    return df[df["budget"] == top]


def paired_vs_dense(df: pd.DataFrame, keys=("model", "benchmark", "budget")) -> pd.DataFrame:
    """Pruned minus dense accuracy for every pruned run, paired on (problem, seed) within ``keys``.

    One row per (keys, run) with ``diff``, ``ci_low``, ``ci_high``, ``p_value`` and ``n`` pairs, from
    ``tts_prune.tts.stats.paired_difference``. Runs without a dense baseline for the same keys are skipped.
    """
    from ..tts.stats import paired_difference

    rows = []
    dense = df[df["method"] == DENSE]
    for group_key, pruned in df[df["method"] != DENSE].groupby(list(keys) + ["run"]):
        match = dense
        for key, value in zip(keys, group_key):
            match = match[match[key] == value]
        if match.empty:
            continue
        result = paired_difference(pruned, match)
        rows.append({**dict(zip(list(keys) + ["run"], group_key)), **result})
    return pd.DataFrame(rows)


def _selection(df: pd.DataFrame, choice: dict) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    for key, value in choice.items():
        if key in ("method", "allocation", "sparsity") and value != "(all)":
            keep &= (df[key] == value) | (df["method"] == DENSE)  # the dense baseline stays for reference
        elif value != "(all)":
            keep &= df[key] == value
    return df[keep]


def draw(df: pd.DataFrame, **choice):
    """The explorer's figure for one selection: scaling curves of the selected runs, dense included."""
    part = _selection(df, choice)
    if part.empty:
        return None
    title = " · ".join(f"{k}={v}" for k, v in choice.items() if k in ("model", "benchmark"))
    return plots.scaling_curves(accuracy(part, ["run", "budget"]), hue="run", title=title)


def static_figures(df: pd.DataFrame) -> list:
    """One scaling-curve figure per (model, benchmark), every run: the explorer's static fallback."""
    figures = []
    for (model, benchmark), part in df.groupby(["model", "benchmark"]):
        figures.append(plots.scaling_curves(accuracy(part, ["run", "budget"]), hue="run",
                                            title=f"{model} · {benchmark}"))
    return figures


def explorer(df: pd.DataFrame, static: bool = True):
    """Dropdowns over ``FIELDS`` redrawing the scaling curves from ``df`` (``runs(load_results(...))``).

    Returns the widget box; with ``static`` the fallback figures are displayed too, so a rendering
    that cannot run widget scripts still shows every panel.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    controls = {}
    for field in FIELDS:
        values = sorted(df[field].dropna().unique().tolist(), key=plot_order)  # dense first
        options = values if field in ("model", "benchmark") else ["(all)"] + values
        controls[field] = widgets.Dropdown(options=options, value=options[0], description=field)
    output = widgets.Output()

    def redraw(**choice):
        with output:
            output.clear_output(wait=True)
            fig = draw(df, **choice)
            if fig is None:
                print("no records for this selection")
            else:
                plt.show(fig)

    def on_change(_change=None):
        redraw(**{k: w.value for k, w in controls.items()})

    for control in controls.values():
        control.observe(on_change, names="value")
    box = widgets.VBox([widgets.HBox(list(controls.values())[:3]), widgets.HBox(list(controls.values())[3:]), output])
    display(box)
    on_change()
    if static:
        for fig in static_figures(df):
            display(fig)
            plt.close(fig)
    return box
