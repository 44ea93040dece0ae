"""Does pruning hurt the toy reasoner? Dense vs Magnitude vs Wanda at the largest thinking budget.

Usage: ``.venv/bin/python bench/toy_pruning.py [--problems 200] [--budget 256]``

Calibration is drawn from train-split conversations (never the test problems: ``toy_task.split_of``).
Accuracy gets a 95% Wilson interval; the change against dense is ``tts_prune.paired_difference`` on the
same problems (95% bootstrap interval and a sign-flip p-value).
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import pandas as pd
import torch

import tts_prune
from tts_prune import paths
from tts_prune.models import toy, toy_task
from tts_prune.tts import toy_reasoner


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def paired(pruned: list[bool], dense: list[bool]) -> dict:
    """Pruned minus dense on the same problems: ``tts_prune.paired_difference`` (bootstrap CI, sign-flip p)."""
    frame = lambda flags: pd.DataFrame({"problem_id": range(len(flags)), "correct": flags})  # noqa: E731
    return tts_prune.paired_difference(frame(pruned), frame(dense))


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
    base = toy_reasoner.budget_correct(dense, tokenizer, problems, (args.budget,), show_progress=False)[args.budget]
    rows = [("dense", 0.0, base, 0.0)]
    for method in ("magnitude", "wanda"):
        for sparsity in (0.1, 0.2, 0.5):
            model = copy.deepcopy(dense)
            start = time.perf_counter()
            config = tts_prune.PruneConfig(method=method, sparsity=sparsity, nsamples=args.nsamples,
                                           seqlen=args.seqlen, calibration=calib)
            tts_prune.prune(model, tokenizer, config, calibration=None, show_progress=False)
            flags = toy_reasoner.budget_correct(model, tokenizer, problems, (args.budget,), show_progress=False)[args.budget]
            rows.append((method, sparsity, flags, time.perf_counter() - start))
            print(f"done {method} {sparsity}", flush=True)

    n = len(problems)
    print(f"\nbudget {args.budget}, {n} held-out problems (seed 1), calibration {args.nsamples}x{args.seqlen} train-split tokens")
    print("| method | sparsity | accuracy | 95% CI (Wilson) | change vs dense | 95% CI of change (bootstrap) | p (sign flip) |")
    print("|---|---|---|---|---|---|---|")
    for method, sparsity, flags, _ in rows:
        low, high = wilson(sum(flags), n)
        if method == "dense":
            print(f"| dense | 0% | {sum(flags) / n:.3f} | [{low:.3f}, {high:.3f}] | - | - | - |")
            continue
        d = paired(flags, base)
        print(f"| {method} | {sparsity:.0%} | {sum(flags) / n:.3f} | [{low:.3f}, {high:.3f}] | {d['diff']:+.3f} | "
              f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | {d['p_value']:.3g} |")


if __name__ == "__main__":
    main()
