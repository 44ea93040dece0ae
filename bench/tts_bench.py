"""Benchmark of the evaluator's transformers backend (CPU-friendly sizes); every ratio is measured in one run.

(1) sweep: wall time of a k-budget incremental sweep relative to ONE run at its largest budget (target
    <= 1.15x), plus generated tokens; optionally the naive loop of one run per budget, whose records
    must equal the sweep's (checked).
(2) throughput: generated tokens/s of the decode loop by batch size against plain batch-1
    ``model.generate`` (target >= 4x at the best batch size).
(3) bound: tokens/s at one batch size as a fraction of the compute bound: 2 FLOP per matmul parameter
    per token (every ``nn.Linear`` weight, lm_head included, the embedding lookup excluded; attention's
    context-dependent FLOPs are left out, which makes the bound optimistic) at the matmul rate measured
    in the same run on the model's own weight shapes at that batch size (target >= 0.6).

    python bench/tts_bench.py [--model smollm2-135m-instruct] [--sections sweep,throughput,bound]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from tts_prune.models.loading import load_model
from tts_prune.models.runtime import use_threads
from tts_prune.tts.benchmarks import load_benchmark
from tts_prune.tts.formats import FORMATS, build_prompt
from tts_prune.tts.generation import DecodingConfig, sweep


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


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def section_sweep(model, tok, prompts, fmt, args) -> None:
    budgets = [int(b) for b in args.budgets.split(",")]
    config = DecodingConfig(answer_tokens=args.answer_tokens, batch_size=len(prompts))
    print(f"## (1) sweep cost: {len(prompts)} problems, budgets {budgets}, answer <= {args.answer_tokens} tokens, "
          f"{args.repeats} alternating repeats, min wall time each; {load_note()}")
    singles, sweeps = [], []
    for _ in range(args.repeats):  # alternate, so a load change hits both
        one, t = timed(lambda: sweep(model, tok, prompts, [budgets[-1]], fmt, config, show_progress=False))
        singles.append(t)
        full, t = timed(lambda: sweep(model, tok, prompts, budgets, fmt, config, show_progress=False))
        sweeps.append(t)
    tok_one, tok_sweep = generated_tokens(one, False), generated_tokens(full, True)
    print("| run | generated tokens | x single | wall s (min) | x single |")
    print("|---|---|---|---|---|")
    print(f"| single run at B={budgets[-1]} | {tok_one} | 1.00 | {min(singles):.1f} | 1.00 |")
    print(f"| incremental sweep, {len(budgets)} budgets | {tok_sweep} | {tok_sweep / tok_one:.2f} | {min(sweeps):.1f} "
          f"| {min(sweeps) / min(singles):.2f} |")
    print(f"(all wall times: single {[round(t, 1) for t in singles]}, sweep {[round(t, 1) for t in sweeps]}; "
          f"{load_note()})")
    if args.naive:
        naive_t, naive_tokens, equal = 0.0, 0, 0
        for b in budgets:
            part, seconds = timed(lambda b=b: sweep(model, tok, prompts, [b], fmt, config, show_progress=False))
            naive_t += seconds
            naive_tokens += generated_tokens(part, shared_thinking=False)
            equal += sum(x == y for x, y in zip(part, [g for g in full if g.budget == b]))
        print(f"| naive loop, one run per budget | {naive_tokens} | {naive_tokens / tok_one:.2f} | {naive_t:.1f} "
              f"| {naive_t / min(singles):.2f} |")
        print(f"sweep records equal to the separate per-budget runs: {equal} of {len(full)}")


def generate_rate(model, tok, prompts, n_new: int) -> float:
    """Tokens/s of plain batch-1 ``model.generate``, greedy, exactly ``n_new`` new tokens per prompt."""
    made, began = 0, time.perf_counter()
    for text in prompts:
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        made += out.shape[1] - ids["input_ids"].shape[1]
    return made / (time.perf_counter() - began)


def sweep_rate(model, tok, prompts, fmt, batch: int, n_new: int) -> float:
    """Tokens/s of the decode loop on ``batch`` rows: thinking capped at ``n_new`` tokens, 1 answer token."""
    chosen = (prompts * (batch // len(prompts) + 1))[:batch]
    config = DecodingConfig(answer_tokens=1, batch_size=batch)
    gens, seconds = timed(lambda: sweep(model, tok, chosen, [n_new], fmt, config, show_progress=False))
    return sum(g.thinking_tokens + g.answer_tokens for g in gens) / seconds


def section_throughput(model, tok, prompts, fmt, args) -> None:
    n_new = args.throughput_tokens
    print(f"\n## (2) throughput: up to {n_new} thinking tokens per row, greedy; {load_note()}")
    base = generate_rate(model, tok, prompts[:4], n_new)
    print("| engine | batch | tokens/s | x generate b=1 |")
    print("|---|---|---|---|")
    print(f"| model.generate | 1 | {base:.1f} | 1.00 |")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        rate = sweep_rate(model, tok, prompts, fmt, batch, n_new)
        print(f"| tts_prune sweep | {batch} | {rate:.1f} | {rate / base:.2f} |")
    print(f"({load_note()})")


def matmul_seconds(model, rows: int, repeats: int = 3) -> tuple[float, int]:
    """(seconds, matmul parameters) of one pass of ``rows`` tokens through every Linear of the model, best of
    ``repeats``: the model's own weight shapes and dtype, nothing else."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    params = sum(m.weight.numel() for m in linears)
    inputs = {m.in_features: torch.randn(rows, m.in_features, dtype=m.weight.dtype) for m in linears}
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            began = time.perf_counter()
            for m in linears:
                torch.nn.functional.linear(inputs[m.in_features], m.weight)
            best = min(best, time.perf_counter() - began)
    return best, params


def section_bound(model, tok, prompts, fmt, args) -> None:
    batch, n_new = args.bound_batch, args.throughput_tokens
    print(f"\n## (3) fraction of the compute bound at batch {batch}; {load_note()}")
    seconds, params = matmul_seconds(model, batch)
    rate = 2 * params * batch / seconds
    bound = batch / seconds
    achieved = sweep_rate(model, tok, prompts, fmt, batch, n_new)
    seconds_after, _ = matmul_seconds(model, batch)  # again after the decode: the load may have changed
    bound_after = batch / seconds_after
    print("| quantity | value |")
    print("|---|---|")
    print(f"| matmul parameters (Linear weights, lm_head included) | {params / 1e6:.1f} M |")
    print(f"| matmul rate at batch {batch}, the model's weight shapes (before / after) | {rate / 1e9:.1f} / "
          f"{2 * params * batch / seconds_after / 1e9:.1f} GFLOP/s |")
    print(f"| compute bound = rate / (2 x params) (before / after) | {bound:.1f} / {bound_after:.1f} tokens/s |")
    print(f"| decode loop, batch {batch}, {n_new} tokens per row | {achieved:.1f} tokens/s |")
    print(f"| fraction of the bound (mean of before / after) | {achieved / ((bound + bound_after) / 2):.2f} |")
    print(f"({load_note()})")


SECTIONS = {"sweep": section_sweep, "throughput": section_throughput, "bound": section_bound}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name or local directory")
    parser.add_argument("--sections", default="sweep,throughput,bound", help=f"comma-separated, of {list(SECTIONS)}")
    parser.add_argument("--budgets", default="32,64,128,192,256")
    parser.add_argument("--problems", type=int, default=8, help="rows of the sweep section")
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="alternating single/sweep repeats (min is kept)")
    parser.add_argument("--naive", action="store_true", help="also run one sweep per budget and compare records")
    parser.add_argument("--batch-sizes", default="1,8,16,32")
    parser.add_argument("--throughput-tokens", type=int, default=32)
    parser.add_argument("--bound-batch", type=int, default=16)
    parser.add_argument("--threads", default="auto", help="'auto' (every core this process may use) or a number")
    args = parser.parse_args()
    threads = use_threads(args.threads)
    model, tok = load_model(args.model, dtype="float32", device="cpu")
    fmt = FORMATS["generic"]
    problems = load_benchmark("chain_sum", limit=32, seed=0)
    prompts = [build_prompt(tok, p["problem"], fmt) for p in problems]
    print(f"# tts_bench: {args.model}, fp32, {threads} torch thread(s), torch {torch.__version__}")
    for name in args.sections.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"section {name!r} is unknown; use any of {list(SECTIONS)}")
        chosen = prompts[:args.problems] if name == "sweep" else prompts
        SECTIONS[name](model, tok, chosen, fmt, args)


if __name__ == "__main__":
    main()
