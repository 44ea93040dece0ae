"""05-report's provenance audit: two different recipes whose weights are identical.

A recipe that changes nothing (ShortGPT removing round(s x L) = 0 blocks, an allocation that degenerates to
uniform, a calibration seed that a data-free method never reads) saves the same weights as another recipe; the
report would then draw two "different" curves from one model and a reader would conclude that the difference
"does nothing". :func:`identical_weights` finds every such pair, in the evaluation records (``model_hash``: the
fingerprint of the weights that generated) and in 03-pruning's saved recipes (``pruning.json``:
``pruned_fingerprint``, and ``source_fingerprint`` for the dense weights), with the reason where the recipes
explain it. A pair without a reason means a run was generated from the wrong weights; the report refuses it.
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pandas as pd

from ..pruning.recipe import DENSE  # the unpruned baseline, named once (pruning/recipe.py)
COLUMNS = ["model", "run", "other", "fingerprint", "where", "reason", "explained"]


def read_pruning_summaries(artifacts_root) -> pd.DataFrame:
    """Every ``pruning.json`` that 03-pruning wrote under ``artifacts_root`` (one row per saved recipe)."""
    found = sorted(Path(artifacts_root).glob("03-pruning/**/pruning.json"))
    return pd.DataFrame([json.loads(p.read_text()) for p in found])


def _value(info: dict, key):
    value = info.get(key)
    return None if value is None or (isinstance(value, float) and value != value) else value


def _count(info: dict) -> int | None:
    # ShortGPT's block count (a table column of counts and Nones holds floats)
    value = _value(info, "shortgpt_layers")
    return int(value) if value else None


def _recipe_key(info: dict) -> tuple:
    # what names a recipe in both the records and the 03 summaries
    sparsity = _value(info, "sparsity")
    return (info.get("model"), info.get("method"), info.get("allocation"),
            None if sparsity is None or _count(info) else round(float(sparsity), 4), _count(info))


def _pruned_nothing(info: dict) -> str | None:
    if info.get("method") == DENSE:
        return None
    if info.get("method") == "shortgpt" and _value(info, "removed_layers") == []:
        return "ShortGPT removed 0 blocks (round(s x L) = 0): the dense weights"
    if _value(info, "achieved_sparsity") == 0:
        return "pruned nothing (achieved sparsity 0): the dense weights"
    return None


def reason(a: dict, b: dict) -> str | None:
    """Why two recipes (dicts of recipe fields) can share weights, or None when nothing explains it."""
    for one, other in ((a, b), (b, a)):
        if other.get("method") == DENSE and _pruned_nothing(one):
            return _pruned_nothing(one)
    if a.get("method") == DENSE or b.get("method") == DENSE:
        return None
    if _pruned_nothing(a) and _pruned_nothing(b):
        return "both pruned nothing"
    if a.get("method") == b.get("method") == "shortgpt":
        removed_a, removed_b = _value(a, "removed_layers"), _value(b, "removed_layers")
        if removed_a is not None and list(removed_a) == list(removed_b or []):
            return f"ShortGPT removed the same blocks {list(removed_a)} in both"
    if a.get("method") == b.get("method"):
        targets_a, targets_b = _value(a, "layer_sparsities"), _value(b, "layer_sparsities")
        if targets_a is not None and targets_b is not None and list(targets_a) == list(targets_b):
            if a.get("allocation") != b.get("allocation"):
                first, second = sorted((a.get("allocation"), b.get("allocation")), key=lambda x: x == "uniform")
                shown = [round(float(t), 4) for t in targets_a]
                return (f"{first} allocation equal to {second} (identical per-block targets "
                        f"{shown[:6]}{'...' if len(shown) > 6 else ''})")
            if a.get("method") == "magnitude":  # same allocation, same targets: only the calibration differed
                return f"magnitude reads no calibration data and the {a.get('allocation')} targets are identical"
    return None


def _pairs(rows: list[dict], where: str) -> list[dict]:
    # rows: {"model", "run", "fingerprints": set, **recipe fields}; one output row per pair sharing a fingerprint
    out = []
    for a, b in combinations(rows, 2):
        shared = sorted(a["fingerprints"] & b["fingerprints"])
        if a["model"] != b["model"] or a["run"] == b["run"] or not shared:
            continue
        why = reason(a, b)
        out.append({"model": a["model"], "run": a["run"], "other": b["run"], "fingerprint": ", ".join(shared),
                    "where": where, "reason": why or "unexplained: generated from the same weights",
                    "explained": why is not None})
    return out


def _summary_label(info: dict, vary: set) -> str:
    if _count(info):
        label = f"{info['method']}/-{_count(info)}L"
    else:
        label = f"{info['method']}/{info['allocation']}/{float(info['sparsity']):g}"
    return label + "".join(f"/{k}={info.get(k)}" for k in ("calibration", "calibration_seed") if k in vary)


def identical_weights(df: pd.DataFrame, summaries: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every pair of different runs (records: ``explorer.runs`` frame with ``model_hash``) and of different
    03 recipes (``read_pruning_summaries``) whose weights share a fingerprint, with the ``reason`` where the
    recipes give one (``explained``); empty when there is none. Columns: :data:`COLUMNS`."""
    summaries = summaries if summaries is not None else pd.DataFrame()
    by_recipe = {_recipe_key(s): s for s in summaries.to_dict(orient="records")}
    rows = []
    if "model_hash" in df.columns:
        for (model, run), part in df.groupby(["model", "run"]):
            hashes = {h for h in part["model_hash"] if isinstance(h, str) and h and h != "unrecorded"}
            recipe = next((r for r in part["recipe"] if isinstance(r, dict)), {}) if "recipe" in part else {}
            info = {**recipe, "model": model, "method": part["method"].iloc[0],
                    "allocation": part["allocation"].iloc[0]}
            extra = by_recipe.get(_recipe_key(info), {})
            rows.append({**extra, **info, "layer_sparsities": extra.get("layer_sparsities"), "run": run,
                         "fingerprints": hashes})
    found = _pairs(rows, "records")
    if not summaries.empty and "pruned_fingerprint" in summaries.columns:
        records = summaries.to_dict(orient="records")
        vary = {k for k in ("calibration", "calibration_seed") if k in summaries.columns and summaries[k].nunique() > 1}
        saved = [{**s, "run": _summary_label(s, vary), "fingerprints": {s["pruned_fingerprint"]}}
                 for s in records if isinstance(s.get("pruned_fingerprint"), str)]
        dense = {(s["model"], s["source_fingerprint"]) for s in records if isinstance(s.get("source_fingerprint"), str)}
        saved += [{"model": m, "method": DENSE, "run": DENSE, "fingerprints": {f}} for m, f in sorted(dense)]
        found += _pairs(saved, "03 recipes")
    return pd.DataFrame(found, columns=COLUMNS)


class UnexplainedWeights(RuntimeError):
    """Runs generated from the same weights without a reason: one of them came from the wrong model."""


def audit(df: pd.DataFrame, artifacts_root) -> pd.DataFrame:
    """05's audit: :func:`identical_weights` of the records and of 03's saved recipes under ``artifacts_root``;
    any pair is announced and shown in red (:func:`styled`), and an unexplained pair stops the report
    (:class:`UnexplainedWeights`, naming the runs). Returns the pairs (empty when every run has its own weights)."""
    identical = identical_weights(df, read_pruning_summaries(artifacts_root))
    if not identical.empty:
        from IPython.display import display

        print(f"WARNING: {len(identical)} pair(s) of different recipes have identical weights (red): each pair is "
              "one model")
        display(styled(identical))
    unexplained = identical[~identical["explained"]]
    if not unexplained.empty:
        raise UnexplainedWeights("runs generated from the same weights without a reason: "
                                 f"{unexplained[['model', 'run', 'other']].values.tolist()}; rerun them from their "
                                 "own 03-pruning models")
    return identical


def styled(table: pd.DataFrame):
    """The audit table in red (bold where unexplained), for the rendered report."""
    def colour(row):
        return ["color: #b00020; font-weight: bold" if not row["explained"] else "color: #b00020"] * len(row)

    return table.style.apply(colour, axis=1)
