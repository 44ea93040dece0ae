"""Check the accelerator paths against the CPU fp32 reference on one model (run it where CUDA exists).

    python bench/device_check.py --model toy-reasoner --benchmark toy-reasoning --limit 64

1. Wanda pruning on CPU fp32, CUDA fp32 and CUDA bf16 with the same calibration tokens: achieved
   global sparsity of each and the share of mask entries that agree with the CPU fp32 masks.
2. Budget-forced greedy evaluation (transformers backend) of the dense and the Wanda-pruned model on
   CPU fp32 and CUDA bf16: accuracy per budget, agreement of per-record correctness, tokens/s ratio.
Without CUDA it runs the CPU part only and says so. Numbers are printed, never asserted.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

import tts_prune
from tts_prune.models.layers import decoder_layers, prunable_linears, weight_matrix


def masks(model) -> list[torch.Tensor]:
    return [weight_matrix(m).eq(0).cpu() for block in decoder_layers(model) for m in prunable_linears(block).values()]


def agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b))
    return same / sum(x.numel() for x in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-reasoner")
    parser.add_argument("--benchmark", default="toy-reasoning")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--budgets", default=None, help="comma-separated; default: the toy reasoner's sweep")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibration", default="gsm8k", help="calibration source (see PruneConfig.calibration)")
    args = parser.parse_args()
    if args.budgets:
        budgets = [int(b) for b in args.budgets.split(",")]
    else:
        from tts_prune.models.toy import DEFAULT_BUDGETS
        budgets = list(DEFAULT_BUDGETS)

    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}; device: {torch.cuda.get_device_name() if cuda else 'CPU only'}")
    settings = [("cpu", "float32")] + ([("cuda", "float32"), ("cuda", "bfloat16")] if cuda else [])
    dense, tokenizer = tts_prune.load_model(args.model, device="cpu", dtype="float32")
    config = tts_prune.PruneConfig(method="wanda", sparsity=args.sparsity, nsamples=args.nsamples,
                                   seqlen=args.seqlen, calibration=args.calibration)
    calibration = tts_prune.calibration_batches(tokenizer, config.calibration, config.nsamples, config.seqlen,
                                                config.seed)
    pruned = {}
    for device, dtype in settings:
        model = copy.deepcopy(dense).to(device=device, dtype=getattr(torch, dtype))
        began = time.perf_counter()
        result = tts_prune.prune(model, tokenizer, config, calibration=calibration)
        pruned[(device, dtype)] = model
        print(f"wanda {args.sparsity:.0%} on {device} {dtype}: global sparsity {result.global_sparsity:.4f}, "
              f"{time.perf_counter() - began:.1f} s")
    reference = masks(pruned[("cpu", "float32")])
    for key, model in pruned.items():
        print(f"  mask agreement {key[0]} {key[1]} vs cpu float32: {agreement(reference, masks(model)):.5f}")

    evals = [("cpu", "float32")] + ([("cuda", "bfloat16")] if cuda else [])
    frames = {}
    for label, base in (("dense", dense), ("wanda", pruned[("cpu", "float32")])):
        for device, dtype in evals:
            model = copy.deepcopy(base).to(device=device, dtype=getattr(torch, dtype))
            began = time.perf_counter()
            frame = tts_prune.evaluate((model, tokenizer), args.benchmark, budgets, limit=args.limit,
                                       backend="transformers", batch_size=args.batch_size,
                                       model_name=f"{args.model}-{label}-{device}-{dtype}",
                                       out=f"results/device-check/{label}-{device}-{dtype}", show_progress=False)
            seconds = time.perf_counter() - began
            frames[(label, device)] = frame
            tokens = int(frame.groupby("problem_id")["thinking_tokens"].max().sum() + frame["answer_tokens"].sum())
            accuracy = frame.groupby("budget")["correct"].mean().round(3).to_dict()
            print(f"{label} {device} {dtype}: accuracy by budget {accuracy}; {tokens / seconds:.0f} tokens/s")
        if cuda:
            a, b = frames[(label, "cpu")], frames[(label, "cuda")]
            merged = a.merge(b, on=["problem_id", "budget"], suffixes=("_cpu", "_cuda"))
            same = (merged["correct_cpu"] == merged["correct_cuda"]).mean()
            same_text = (merged["thinking_cpu"] == merged["thinking_cuda"]).mean()
            print(f"  {label}: correctness agreement cpu fp32 vs cuda bf16 {same:.3f}; identical thinking {same_text:.3f}")


if __name__ == "__main__":
    main()
