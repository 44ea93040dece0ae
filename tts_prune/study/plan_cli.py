"""``tts-prune plan``: read a study, plan it on an accelerator (``plan.plan_study``) and print the report
(``plan_report.render``); exit 1 when a step cannot run there."""
from __future__ import annotations

import argparse
import sys

from .. import paths
from .config import load_study
from .hardware import ACCELERATORS, EngineModel
from .plan import PlanOptions, plan_study


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default=str(paths.ROOT / "studies" / "paper.yaml"), help="study YAML file")
    parser.add_argument("--model", action="append", default=None, help="replace the study's models (repeatable)")
    parser.add_argument("--gpu", default="h100-80gb", choices=sorted(ACCELERATORS), help="the device to plan for")
    parser.add_argument("--gpu-memory", type=float, default=None, help="GiB of device memory (replaces the device's)")
    parser.add_argument("--throughput", type=float, default=None,
                        help="decode tokens/s per device, replacing the roofline (e.g. a measured rate)")
    parser.add_argument("--efficiency", type=float, default=None, help="share of the bandwidth roofline reached "
                        "(default: calibrated on a published vLLM H100 measurement, see `tts_prune.study.hardware`)")
    parser.add_argument("--answer-mean", type=int, default=200, help="assumed mean answer tokens (default 200)")
    parser.add_argument("--engine-start", type=float, default=120.0, help="seconds per vLLM engine start (default 120)")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="vLLM's max_num_seqs (default 256)")
    parser.add_argument("--divergence-batch", type=int, default=None,
                        help="traces per divergence forward pass (default: as 04's code runs them)")
    parser.add_argument("--divergence-slice", type=int, default=None, help="positions per logits slice in the "
                        "divergence step (default: as 04's code runs it; 0: whole traces, the batched code)")
    parser.add_argument("--max-gen-tokens", type=int, default=None,
                        help="plan with this thinking + answer allowance (s1's max_gen_toks, e.g. 32768)")
    parser.add_argument("--steps", action="store_true", help="print every step of every cell, not only each cell's peak")


def run(args: argparse.Namespace) -> int:
    changes = {} if args.efficiency is None else {"efficiency": args.efficiency}
    engine = EngineModel(throughput=args.throughput, engine_start_s=args.engine_start, max_num_seqs=args.max_num_seqs,
                         **changes)
    options = PlanOptions(gpu=args.gpu, gpu_memory=args.gpu_memory, engine=engine, answer_mean=args.answer_mean,
                          divergence_batch=args.divergence_batch, divergence_slice=args.divergence_slice,
                          max_gen_tokens=args.max_gen_tokens)
    plan = plan_study(load_study(args.study, models=args.model), options=options)
    print(plan.text(per_step=args.steps))
    if plan.refusals:
        print(f"tts-prune plan: {len(plan.refusals)} step(s) will not fit on {plan.gpu.name}; fix them before the "
              "spend:\n" + "\n".join(f"  - {r}" for r in plan.refusals), file=sys.stderr)
        return 1
    return 0
