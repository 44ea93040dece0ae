"""`tts-prune plan` against a measured run on this machine: generated tokens exactly, time at a given rate.

    python bench/plan_check.py --throughput 117.1     # the rate BENCHMARKS.md measured for SmolLM2 at batch 16

A random-init model of SmolLM2-135M's shape (built from the embedded model's config, no weights read) never
stops by itself, so every trace reaches its budget and every answer its cap: the run must generate exactly the
plan's worst case. The wall time is printed beside the plan's decode time at ``--throughput`` (tokens/s of the
same loop measured on an idle machine); on a loaded machine the two differ by the load, not by the plan.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import tts_prune
from tts_prune.study import grid
from tts_prune.study.hardware import EngineModel
from tts_prune.study.plan import PlanOptions, plan_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput", type=float, default=117.1, help="decode tokens/s of this loop at --batch-size")
    parser.add_argument("--budgets", default="32,64")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tts_prune.models.embedded import embedded_model_dir

    budgets = [int(b) for b in args.budgets.split(",")]
    source = embedded_model_dir("smollm2-135m-instruct")
    target = Path(tempfile.mkdtemp(prefix="plan-check-")) / "smollm2-shape-random"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source)).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    study = grid.StudyConfig(name="plan-check", models=(str(target),), methods=("wanda",), benchmarks=("gsm8k",),
                             budgets=tuple(budgets), seeds=(0,), answer_tokens=args.answer_tokens,
                             backend="transformers", limit=args.limit, notebooks=("04-tts-scaling",), dtype="float32")
    plan = plan_study(study, options=PlanOptions(gpu="cpu", engine=EngineModel(throughput=args.throughput)))
    steps = plan.steps
    predicted = steps[steps["label"].str.contains("method=dense,") & steps["step"].str.startswith("generation of ")]
    worst = float(predicted["worst_tokens"].iloc[0])
    began = time.perf_counter()
    records = tts_prune.evaluate(str(target), "gsm8k", budgets, limit=args.limit, seeds=[0],
                                 answer_tokens=args.answer_tokens, backend="transformers", batch_size=args.batch_size,
                                 show_progress=False, out=target.parent / "records")
    wall = time.perf_counter() - began
    generated = int(records.groupby(["problem_id", "seed"])["thinking_tokens"].max().sum()
                    + records["answer_tokens"].sum())
    print(f"every record capped: thinking {records['capped'].all()}, answers {records['answer_capped'].all()}")
    print(f"plan worst case {worst:,.0f} generated tokens; measured {generated:,}; wall {wall:.1f} s "
          f"({generated / wall:.1f} tokens/s, model load and prefill included); the plan's decode time at "
          f"{args.throughput} tokens/s: {worst / args.throughput:.1f} s")


if __name__ == "__main__":
    main()
