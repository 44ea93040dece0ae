"""Accuracy against what a problem costs, and the deployment question: at equal accuracy, which variant is cheaper?

``problem_costs`` gives every record three costs from the cost records of its weights (``tts_prune.tts.cost``):
generated tokens (thinking + answer), FLOPs (``TokenFlops.sequence``: the prompt's prefill and every generated
token at its own context) and measured seconds, ``prompt_tokens x prefill seconds per token + generated tokens /
tokens per second``, both at the batch the evaluation ran (machine-seconds per problem: the engine serves a batch
at once; one sequence's latency is ``batch`` times its decode share). The few forced-end tokens between thinking and
answer are left out. ``cost_curves`` averages them per run and budget beside accuracy and tokens per correct answer;
``equal_accuracy`` answers, at each of the dense model's budgets: what does each pruned run pay to reach the
dense accuracy (linear interpolation along its budget curve; "never reaches" when no budget does), and what
accuracy does it reach at the dense cost.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from ..pruning.recipe import DENSE
from ..tts.flops import TokenFlops
from ..tts.stats import accuracy_table
from .plots import run_styles

COSTS = {"tokens": "generated tokens per problem", "flops": "FLOPs per problem",
         "seconds": "measured seconds per problem"}


def _evaluation_row(record: dict) -> dict:
    rows = [r for r in record["measurements"] if r["batch_size"] == record["evaluation_batch"]]
    return rows[0] if rows else record["measurements"][0]


def cost_table(costs: list[dict]) -> pd.DataFrame:
    """One row per cost record at its evaluation batch: ``model_hash``, ``backend``, ``device``, the measured
    per-token seconds, memory and FLOPs per token at the probe's context."""
    rows = []
    for record in costs:
        row = _evaluation_row(record)
        rows.append({"model_hash": record["model_hash"], "backend": record["backend"], "device": record["device"],
                     "batch_size": row["batch_size"], "decode_step_s": row["decode_step_s"],
                     "decode_tokens_per_s": row["decode_tokens_per_s"],
                     "prefill_s_per_token": row["prefill_s_per_token"],
                     "peak_memory_gb": row["peak_memory_bytes"] / 1e9, "memory_source": row["memory_source"],
                     "gflops_per_token": record["flops_per_token_at_probe_context"] / 1e9,
                     "blocks": record["flops"]["blocks"], "measured_at": record["measured_at"]})
    return pd.DataFrame(rows)


def _one_per_weights(costs: list[dict], device: str | None) -> dict:
    """``(model_hash, backend) -> record``: the newest one measured on ``device`` (or on the only device there is)."""
    chosen = [c for c in costs if device is None or c["device"] == device]
    devices = sorted({c["device"] for c in chosen})
    if len(devices) > 1:
        raise ValueError(f"cost records from several devices {devices}; pass device= one of them (costs measured on "
                         "different machines are not comparable)")
    newest = {}
    for record in sorted(chosen, key=lambda c: c["measured_at"]):
        newest[(record["model_hash"], record["backend"])] = record
    return newest


def problem_costs(records: pd.DataFrame, costs: list[dict], prompt_tokens: list[dict] | None = None,
                  device: str | None = None) -> pd.DataFrame:
    """``records`` (one row per problem x budget x seed) with ``generated_tokens``, ``prompt_tokens``, ``flops``
    and ``seconds``; records whose weights have no cost record on ``device`` get NaN FLOPs and seconds, records
    whose prompt length is not stored (``tts.cost.save_prompt_tokens``) NaN ones too (never a guessed prefill)."""
    df = records.assign(generated_tokens=records["thinking_tokens"] + records.get("answer_tokens", 0))
    lengths = pd.DataFrame(prompt_tokens or [], columns=["model_hash", "benchmark", "problem_id", "prompt_tokens"])
    df = df.drop(columns=[c for c in ("prompt_tokens",) if c in df.columns]).assign(_pid=df["problem_id"].astype(str))
    df = df.merge(lengths.rename(columns={"problem_id": "_pid"}), on=["model_hash", "benchmark", "_pid"],
                  how="left").drop(columns="_pid")
    table = _one_per_weights(costs, device)
    backend = df["backend"] if "backend" in df.columns else pd.Series("transformers", index=df.index)
    flops, seconds = [], []
    for weights, engine, prompt, generated in zip(df["model_hash"], backend, df["prompt_tokens"],
                                                  df["generated_tokens"]):
        record = table.get((weights, engine))
        if record is None or prompt != prompt:  # no cost record, or no stored prompt length (NaN)
            flops.append(math.nan)
            seconds.append(math.nan)
            continue
        row = _evaluation_row(record)
        flops.append(TokenFlops(**record["flops"]).sequence(prompt, generated))
        seconds.append(prompt * row["prefill_s_per_token"] + generated / row["decode_tokens_per_s"])
    return df.assign(flops=flops, seconds=seconds)


def cost_curves(df: pd.DataFrame, by=("model", "benchmark", "run", "budget")) -> pd.DataFrame:
    """Per group of ``by``: accuracy (95% bootstrap CI), mean tokens, FLOPs and seconds per problem, and tokens /
    seconds per correct answer (the price of one solved problem: all the group spent over what it solved)."""
    by = [c for c in by if c in df.columns]
    table = accuracy_table(df, by=by).reset_index()[by + ["acc", "ci_low", "ci_high", "n_samples"]]
    spent = df.groupby(by).agg(tokens=("generated_tokens", "mean"), flops=("flops", "mean"),
                               seconds=("seconds", "mean"), solved=("correct", "sum"),
                               all_tokens=("generated_tokens", "sum"), all_seconds=("seconds", "sum")).reset_index()
    out = table.merge(spent, on=by)
    solved = out["solved"].where(out["solved"] > 0)
    return out.assign(tokens_per_correct=out["all_tokens"] / solved,
                      seconds_per_correct=out["all_seconds"] / solved).drop(columns=["all_tokens", "all_seconds"])


def cost_at_accuracy(points: list[tuple[float, float]], target: float) -> tuple[float, str]:
    """The cost at which a budget curve (``(accuracy, cost)`` in budget order) first reaches ``target`` accuracy:
    linear between the two budgets it crosses between; its smallest budget's cost (an upper bound) when that
    already reaches it; NaN, "never reaches", when no budget does."""
    if not points:
        return math.nan, "no points"
    if points[0][0] >= target:
        return points[0][1], "reached at its smallest budget (upper bound)"
    for (a0, c0), (a1, c1) in zip(points, points[1:]):
        if a0 < target <= a1:
            return c0 + (target - a0) / (a1 - a0) * (c1 - c0), "interpolated"
    return math.nan, "never reaches"


def accuracy_at_cost(points: list[tuple[float, float]], target: float) -> tuple[float, str]:
    """The accuracy of a budget curve (``(accuracy, cost)`` in budget order) where its cost first equals
    ``target``, linear between two budgets; NaN when ``target`` is below its cheapest or above its dearest budget."""
    if not points:
        return math.nan, "no points"
    for (a0, c0), (a1, c1) in zip(points, points[1:]):
        if min(c0, c1) <= target <= max(c0, c1):
            return (a0 if c1 == c0 else a0 + (target - c0) / (c1 - c0) * (a1 - a0)), "interpolated"
    if len(points) == 1 and points[0][1] == target:
        return points[0][0], "interpolated"
    cheapest = min(c for _, c in points)
    return math.nan, ("its smallest budget costs more" if target < cheapest else "beyond its largest budget")


def equal_accuracy(curves: pd.DataFrame, cost: str = "seconds", keys=("model", "benchmark")) -> pd.DataFrame:
    """At each dense budget: the dense accuracy and ``cost``; per pruned run, the ``cost`` it needs to reach that
    accuracy (``<cost>_ratio`` = its cost / the dense cost; > 1: dearer; ``reach_by_<cost>`` says how it was read)
    and the accuracy it reaches at the dense cost (``acc_at_dense_<cost>``, minus the dense accuracy in
    ``acc_delta_at_dense_<cost>``). Every cost-dependent column names its cost, so the tables of two costs merge
    on ``keys + [run, dense_budget, dense_acc]``. ``curves``: ``cost_curves``' table."""
    if cost not in COSTS:
        raise ValueError(f"cost={cost!r} is not a cost column; use one of {sorted(COSTS)}")
    keys = [k for k in keys if k in curves.columns]
    rows = []
    for group, part in curves.groupby(keys) if keys else [((), curves)]:
        named = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        dense = part[part["run"] == DENSE].sort_values("budget")
        for run, curve in part[part["run"] != DENSE].groupby("run"):
            points = list(zip(*(curve.sort_values("budget")[c] for c in ("acc", cost))))
            for budget, acc, paid in zip(dense["budget"], dense["acc"], dense[cost]):
                needed, reach = cost_at_accuracy(points, acc)
                reached, at = accuracy_at_cost(points, paid)
                rows.append({**named, "run": run, "dense_budget": budget, "dense_acc": acc, f"dense_{cost}": paid,
                             f"{cost}_at_dense_acc": needed, f"{cost}_ratio": needed / paid if paid else math.nan,
                             f"reach_by_{cost}": reach, f"acc_at_dense_{cost}": reached,
                             f"acc_delta_at_dense_{cost}": reached - acc, f"at_dense_{cost}": at})
    columns = [*keys, "run", "dense_budget", "dense_acc", f"dense_{cost}", f"{cost}_at_dense_acc", f"{cost}_ratio",
               f"reach_by_{cost}", f"acc_at_dense_{cost}", f"acc_delta_at_dense_{cost}", f"at_dense_{cost}"]
    return pd.DataFrame(rows, columns=columns)  # no pruned run (a dense cell): the columns still, never a bare file


def accuracy_vs_cost(curves: pd.DataFrame, title: str | None = None) -> plt.Figure:
    """Accuracy against tokens, FLOPs and measured seconds per problem, one line per run (its budgets connected,
    in budget order), styled by ``plots.run_styles``; a panel without any value (no cost record) says so."""
    fig, axes = plt.subplots(1, len(COSTS), figsize=(4.2 * len(COSTS), 3.4), squeeze=False)
    styles = run_styles(curves["run"].unique())
    for ax, (column, label) in zip(axes[0], COSTS.items()):
        for run, curve in curves.groupby("run", sort=False):
            curve = curve.sort_values("budget").dropna(subset=[column])
            if not curve.empty:
                ax.plot(curve[column], curve["acc"], label=run, **styles[str(run)])
        if not ax.lines:
            ax.text(0.5, 0.5, "no cost record", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def main_device(costs: list[dict]) -> str | None:
    """The device most cost records were measured on (ties: the newest), for a report that must pick one."""
    if not costs:
        return None
    counts = pd.DataFrame(costs).groupby("device").agg(n=("key", "size"), last=("measured_at", "max"))
    return str(counts.sort_values(["n", "last"]).index[-1])
