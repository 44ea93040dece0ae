"""Does pruning hurt the toy reasoner? Dense vs Magnitude vs Wanda at the largest thinking budget.

Usage: ``.venv/bin/python bench/toy_pruning.py [--problems 200] [--budget 256]``

Calibration is drawn from train-split conversations (never the test problems: ``toy_task.split_of``).
Accuracy gets a 95% Wilson interval; the change against dense gets a 95% interval of the paired
per-problem difference (same problems for every row), so "changed by more than its CI" is testable.
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch

import tts_prune
from tts_prune import paths, toy, toy_task


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def paired_diff(pruned: list[bool], dense: list[bool], z: float = 1.96) -> tuple[float, float]:
    """Mean of (pruned - dense) per problem and the half-width of its 95% normal interval."""
    diffs = [int(a) - int(b) for a, b in zip(pruned, dense)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1)
    return mean, z * math.sqrt(var / len(diffs))


def calibration_file(tokenizer, nsamples: int) -> str:
    texts = [toy.render(tokenizer, p["problem"], p["thinking"], p["answer"])
             for p in toy_task.make_problems(nsamples * 4, seed=12345, split="train")]
    path = paths.ensure(paths.RESULTS_DIR / "toy") / "calibration_train_split.txt"
    path.write_text("".join(texts), encoding="utf-8")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--budget", type=int, default=max(toy.DEFAULT_BUDGETS))
    parser.add_argument("--nsamples", type=int, default=64)
    parser.add_argument("--seqlen", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dense, tokenizer = tts_prune.load_model("toy-reasoner")
    problems = toy_task.make_problems(args.problems, seed=1, split="test")
    calib = calibration_file(tokenizer, args.nsamples)
    base = toy.budget_correct(dense, tokenizer, problems, (args.budget,), show_progress=False)[args.budget]
    rows = [("dense", 0.0, base, 0.0)]
    for method in ("magnitude", "wanda"):
        for sparsity in (0.1, 0.2, 0.5):
            model = copy.deepcopy(dense)
            start = time.perf_counter()
            config = tts_prune.PruneConfig(method=method, sparsity=sparsity, nsamples=args.nsamples,
                                           seqlen=args.seqlen, calibration=calib)
            tts_prune.prune(model, tokenizer, config, calibration=None, show_progress=False)
            flags = toy.budget_correct(model, tokenizer, problems, (args.budget,), show_progress=False)[args.budget]
            rows.append((method, sparsity, flags, time.perf_counter() - start))
            print(f"done {method} {sparsity}", flush=True)

    n = len(problems)
    print(f"\nbudget {args.budget}, {n} held-out problems (seed 1), calibration {args.nsamples}x{args.seqlen} train-split tokens")
    print("| method | sparsity | accuracy | 95% CI (Wilson) | change vs dense | 95% CI of change | beyond CI |")
    print("|---|---|---|---|---|---|---|")
    for method, sparsity, flags, _ in rows:
        low, high = wilson(sum(flags), n)
        diff, half = paired_diff(flags, base)
        beyond = "yes" if abs(diff) > half else "no"
        print(f"| {method} | {sparsity:.0%} | {sum(flags) / n:.3f} | [{low:.3f}, {high:.3f}] | {diff:+.3f} | "
              f"±{half:.3f} | {beyond if method != 'dense' else '-'} |")


if __name__ == "__main__":
    main()
