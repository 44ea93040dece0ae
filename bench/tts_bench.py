"""Benchmark of the evaluator's transformers backend on the embedded SmolLM2-135M (CPU-friendly sizes).

(1) Cost of a k-budget incremental sweep relative to ONE run at the largest budget, in generated tokens
    and wall time (target <= 1.15x), next to the naive loop of one run per budget.
(2) Generated tokens/s of the batched decode loop at batch sizes 1, 8, 32 against plain batch-1
    ``model.generate`` (target >= 4x at the best batch size).

    python bench/tts_bench.py [--budgets 32,64,128,192,256] [--problems 8] [--answer-tokens 8]
"""
from __future__ import annotations

import argparse
import time

import torch

from tts_prune.tts.benchmarks import load_benchmark
from tts_prune.tts.generation import DecodingConfig, sweep
from tts_prune.models.loading import load_model
from tts_prune.tts.formats import FORMATS, build_prompt


def generated_tokens(gens, shared_thinking: bool) -> int:
    """Tokens the decoder produced: thinking once per row when shared, answers once per distinct record."""
    rows: dict = {}
    for g in gens:
        rows.setdefault((g.index, g.seed), []).append(g)
    total = 0
    for records in rows.values():
        if shared_thinking:
            total += max(g.thinking_tokens for g in records)
            seen = set()  # a natural-stop record repeats at every larger budget but was decoded once
            for g in records:
                if (g.thinking_tokens, g.capped) not in seen:
                    seen.add((g.thinking_tokens, g.capped))
                    total += g.answer_tokens
        else:
            total += sum(g.thinking_tokens + g.answer_tokens for g in records)
    return total


def timed(fn):
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="32,64,128,192,256")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--throughput-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    model, tok = load_model("smollm2-135m-instruct", dtype="float32", device="cpu")
    fmt = FORMATS["generic"]
    problems = load_benchmark("chain_sum", limit=max(args.problems, 32), seed=0)
    prompts = [build_prompt(tok, p["problem"], fmt) for p in problems]
    config = DecodingConfig(answer_tokens=args.answer_tokens, batch_size=args.problems)
    few = prompts[:args.problems]

    print(f"## (1) sweep cost: {len(few)} chain_sum problems, budgets {budgets}, answer {args.answer_tokens} tokens")
    one, t_one = timed(lambda: sweep(model, tok, few, [budgets[-1]], fmt, config, show_progress=False))
    full, t_sweep = timed(lambda: sweep(model, tok, few, budgets, fmt, config, show_progress=False))
    naive_t, naive_tokens = 0.0, 0
    for b in budgets:
        part, seconds = timed(lambda b=b: sweep(model, tok, few, [b], fmt, config, show_progress=False))
        naive_t += seconds
        naive_tokens += generated_tokens(part, shared_thinking=False)
        assert part == [g for g in full if g.budget == b], "sweep differs from a separate run"
    tok_one = generated_tokens(one, shared_thinking=False)
    tok_sweep = generated_tokens(full, shared_thinking=True)
    print("| run | generated tokens | x single | wall s | x single |")
    print("|---|---|---|---|---|")
    print(f"| single run at B={budgets[-1]} | {tok_one} | 1.00 | {t_one:.1f} | 1.00 |")
    print(f"| incremental sweep, {len(budgets)} budgets | {tok_sweep} | {tok_sweep / tok_one:.2f} | {t_sweep:.1f} "
          f"| {t_sweep / t_one:.2f} |")
    print(f"| naive loop, one run per budget | {naive_tokens} | {naive_tokens / tok_one:.2f} | {naive_t:.1f} "
          f"| {naive_t / t_one:.2f} |")
    print("(sweep records equal the separate per-budget runs: checked)")

    n_new = args.throughput_tokens
    print(f"\n## (2) throughput: {n_new} new tokens per sequence, greedy, no early stop")
    # Plain HF generate, batch 1, one prompt after another.
    reference = prompts[:4]
    began = time.perf_counter()
    made = 0
    for text in reference:
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        made += out.shape[1] - ids["input_ids"].shape[1]
    base = made / (time.perf_counter() - began)
    print("| engine | batch | tokens/s | x generate b=1 |")
    print("|---|---|---|---|")
    print(f"| model.generate | 1 | {base:.1f} | 1.00 |")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        chosen = (prompts * 4)[:batch] if batch > 1 else prompts[:4]
        config_b = DecodingConfig(answer_tokens=1, batch_size=batch)
        gens, seconds = timed(lambda: sweep(model, tok, chosen, [n_new], fmt, config_b, show_progress=False))
        made = sum(g.thinking_tokens + g.answer_tokens for g in gens)
        print(f"| tts_prune sweep | {batch} | {made / seconds:.1f} | {made / seconds / base:.2f} |")


if __name__ == "__main__":
    main()
