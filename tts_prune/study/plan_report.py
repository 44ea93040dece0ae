"""The text ``tts-prune plan`` prints (per model, per cell or per step, totals, the authors' protocol and the
worst case of the answer allowance). The plan itself is ``plan.plan_study``; the command is ``plan_cli``."""
from __future__ import annotations

import pandas as pd


def _m(tokens: float) -> str:
    return f"{tokens / 1e6:,.2f} M" if tokens >= 1e5 else f"{tokens:,.0f}"


def render(plan, per_step: bool = False) -> str:
    gpu, engine, t = plan.gpu, plan.options.engine, plan.totals
    lines = [f"plan for study {plan.study!r} on {gpu.name}: {gpu.memory_gib:.1f} GiB, {gpu.bandwidth_gbs:,.0f} GB/s, "
             f"{gpu.bf16_tflops:g} TFLOPS bf16 ({gpu.source})",
             f"throughput model: {engine.describe(gpu)}; vLLM gpu_memory_utilization {engine.gpu_memory_utilization}, "
             f"max_num_seqs {engine.max_num_seqs}, {engine.engine_start_s:.0f} s per engine start; answers "
             f"{plan.options.answer_mean} tokens on average (assumed); thinking to every budget (upper bound)", ""]
    if not plan.models.empty:
        lines.append("models (from config.json, no weights loaded):")
        for m in plan.models.to_dict(orient="records"):
            lines.append(
                f"  {m['model']}: {m['params_b']:.2f} B parameters, weights {m['weights_gib']:.1f} GiB, KV cache "
                f"{m['kv_bytes_per_token']:,} bytes/token; vLLM KV pool {m['kv_pool_gib']:.1f} GiB holds "
                f"{m['at_longest']} sequences at the longest ({min(m['longest'], m['max_model_len']):,} tokens; the "
                f"study asks up to {m['longest']:,}; max_model_len {m['max_model_len']:,}); at the mean context of "
                f"{m['mean_context']:,.0f} tokens "
                f"{m['concurrency']} run at once -> {m['tokens_per_s']:,.0f} generated tokens/s"
                + (f"; sequences past max_model_len {m['max_model_len']:,} are cut there" if m["longest"] > m["max_model_len"]
                   else ""))
        lines.append("")
    columns = ["notebook", "model", "label"] + (["step", "peak_gib", "fits", "hours", "tokens"] if per_step else
                                                ["peak_step", "peak_gib", "fits", "tokens", "hours"])
    table = (plan.steps if per_step else plan.cells)[columns].copy()
    table["model"] = table["model"].str.split("/").str[-1]
    table["tokens"] = (table["tokens"] / 1e6).round(2)
    table = table.rename(columns={"peak_gib": "peak GiB", "tokens": "generated M", "hours": f"{gpu.name}-hours",
                                  "peak_step": "peak step"})
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    lines.append("")
    by_notebook = plan.cells.groupby("notebook").agg(cells=("cell", "size"), hours=("hours", "sum"),
                                                    tokens=("tokens", "sum"))
    for notebook, row in by_notebook.iterrows():
        lines.append(f"  {notebook}: {int(row['cells'])} cells, {row['hours']:.2f} {gpu.name}-hours"
                     + (f", {_m(row['tokens'])} generated tokens" if row["tokens"] else ""))
    lines += [
        f"total: {t['hours']:.1f} {gpu.name}-hours: 04 {t['tts_hours']:.1f} (generating {t['generation_hours']:.1f}, "
        f"{t['engine_starts']} engine starts included; the rest divergence), 01-03 {t['other_hours']:.1f}; "
        f"{_m(t['tokens'])} generated tokens",
        f"the authors' scripts on the same grid (one harness run per budget and seed, thinking regenerated from "
        f"scratch, {t['authors_engine_starts']} engine starts): {t['authors_hours']:.1f} {gpu.name}-hours, "
        f"{_m(t['authors_tokens'])} generated tokens; its generation costs {t['saving']:.2f}x the kit's",
        f"worst case of the answer allowance (every answer fills it): {_m(t['worst_tokens'])} generated tokens, "
        f"{t['worst_hours']:.1f} {gpu.name}-hours",
        "refusals: none" if plan.ok else f"refusals: {len(plan.refusals)} (below)"]
    lines += [f"  - {r}" for r in plan.refusals]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- CLI
