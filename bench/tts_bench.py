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
    """(result, wall seconds, CPU seconds of this process). On a machine shared with other jobs the CPU
    seconds of a 1-thread run stay close to its wall time on an idle core, while wall time does not."""
    began, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - began, time.process_time() - cpu


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def section_sweep(model, tok, prompts, fmt, args) -> None:
    budgets = [int(b) for b in args.budgets.split(",")]
    config = DecodingConfig(answer_tokens=args.answer_tokens, batch_size=len(prompts))
    print(f"## (1) sweep cost: {len(prompts)} problems, budgets {budgets}, answer <= {args.answer_tokens} tokens, "
          f"{args.repeats} alternating repeats, min wall time each; {load_note()}")
    single, swept = [], []  # (wall, cpu) per repeat
    for _ in range(args.repeats):  # alternate, so a load change hits both
        one, *t = timed(lambda: sweep(model, tok, prompts, [budgets[-1]], fmt, config, show_progress=False))
        single.append(t)
        full, *t = timed(lambda: sweep(model, tok, prompts, budgets, fmt, config, show_progress=False))
        swept.append(t)
    tok_one, tok_sweep = generated_tokens(one, False), generated_tokens(full, True)
    w1, c1 = min(t[0] for t in single), min(t[1] for t in single)
    ws, cs = min(t[0] for t in swept), min(t[1] for t in swept)
    print("| run | generated tokens | x single | wall s (min) | x single | CPU s (min) | x single |")
    print("|---|---|---|---|---|---|---|")
    print(f"| single run at B={budgets[-1]} | {tok_one} | 1.00 | {w1:.1f} | 1.00 | {c1:.1f} | 1.00 |")
    print(f"| incremental sweep, {len(budgets)} budgets | {tok_sweep} | {tok_sweep / tok_one:.2f} | {ws:.1f} "
          f"| {ws / w1:.2f} | {cs:.1f} | {cs / c1:.2f} |")
    print(f"(every (wall, CPU) s: single {[tuple(round(x, 1) for x in t) for t in single]}, sweep "
          f"{[tuple(round(x, 1) for x in t) for t in swept]}; {load_note()})")
    if args.naive:
        naive_w, naive_c, naive_tokens, equal = 0.0, 0.0, 0, 0
        for b in budgets:
            part, w, c = timed(lambda b=b: sweep(model, tok, prompts, [b], fmt, config, show_progress=False))
            naive_w, naive_c = naive_w + w, naive_c + c
            naive_tokens += generated_tokens(part, shared_thinking=False)
            equal += sum(x == y for x, y in zip(part, [g for g in full if g.budget == b]))
        print(f"| naive loop, one run per budget | {naive_tokens} | {naive_tokens / tok_one:.2f} | {naive_w:.1f} "
              f"| {naive_w / w1:.2f} | {naive_c:.1f} | {naive_c / c1:.2f} |")
        print(f"sweep records equal to the separate per-budget runs: {equal} of {len(full)}")


def generate_rate(model, tok, prompts, n_new: int) -> tuple[float, float]:
    """(tokens per wall s, per CPU s) of plain batch-1 ``model.generate``, greedy, ``n_new`` new tokens each."""
    def run():
        made = 0
        for text in prompts:
            ids = tok(text, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            made += out.shape[1] - ids["input_ids"].shape[1]
        return made
    made, wall, cpu = timed(run)
    return made / wall, made / cpu


def _decode(model, tok, prompts, fmt, batch: int, n_new: int):
    """(generated tokens, wall s, CPU s) of the decode loop on ``batch`` rows thinking exactly ``n_new`` tokens
    (the end of thinking suppressed until then, like ``min_new_tokens``) plus 1 answer token."""
    chosen = (prompts * (batch // len(prompts) + 1))[:batch]
    config = DecodingConfig(answer_tokens=1, min_thinking=n_new, batch_size=batch)
    gens, wall, cpu = timed(lambda: sweep(model, tok, chosen, [n_new], fmt, config, show_progress=False))
    return sum(g.thinking_tokens + g.answer_tokens for g in gens), wall, cpu


def sweep_rate(model, tok, prompts, fmt, batch: int, n_new: int) -> tuple[float, float]:
    """(tokens per wall s, per CPU s) of the decode loop, prompt prefill included (as in ``generate_rate``)."""
    made, wall, cpu = _decode(model, tok, prompts, fmt, batch, n_new)
    return made / wall, made / cpu


def steady_rate(model, tok, prompts, fmt, batch: int, n_new: int) -> tuple[float, float]:
    """(tokens per wall s, per CPU s) of steady-state decoding: a run of 8 + ``n_new`` tokens minus a run of 8,
    so the prompt prefill cancels."""
    short, long = _decode(model, tok, prompts, fmt, batch, 8), _decode(model, tok, prompts, fmt, batch, 8 + n_new)
    made = long[0] - short[0]
    return made / (long[1] - short[1]), made / (long[2] - short[2])


def section_throughput(model, tok, prompts, fmt, args) -> None:
    n_new = args.throughput_tokens
    print(f"\n## (2) throughput: {n_new} new tokens per row, greedy, prompt prefill included; {load_note()}")
    base, base_cpu = generate_rate(model, tok, prompts[:4], n_new)
    print("| engine | batch | tokens / wall s | x generate b=1 | tokens / CPU s | x generate b=1 |")
    print("|---|---|---|---|---|---|")
    print(f"| model.generate | 1 | {base:.1f} | 1.00 | {base_cpu:.1f} | 1.00 |")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        rate, rate_cpu = sweep_rate(model, tok, prompts, fmt, batch, n_new)
        print(f"| tts_prune sweep | {batch} | {rate:.1f} | {rate / base:.2f} | {rate_cpu:.1f} | "
              f"{rate_cpu / base_cpu:.2f} |")
    print(f"({load_note()})")


def matmul_seconds(model, rows: int, repeats: int = 3) -> tuple[float, float, int]:
    """(wall s, CPU s, matmul parameters) of one pass of ``rows`` tokens through every Linear of the model, best
    of ``repeats``: the model's own weight shapes and dtype, nothing else."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    params = sum(m.weight.numel() for m in linears)
    inputs = {m.in_features: torch.randn(rows, m.in_features, dtype=m.weight.dtype) for m in linears}
    def one_pass():
        for m in linears:
            torch.nn.functional.linear(inputs[m.in_features], m.weight)
    with torch.no_grad():
        times = [timed(one_pass)[1:] for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times), params


def section_bound(model, tok, prompts, fmt, args) -> None:
    batch, n_new = args.bound_batch, args.throughput_tokens
    print(f"\n## (3) fraction of the compute bound at batch {batch}; {load_note()}")
    wall, cpu, params = matmul_seconds(model, batch)
    achieved, achieved_cpu = steady_rate(model, tok, prompts, fmt, batch, n_new)
    wall2, cpu2, _ = matmul_seconds(model, batch)  # again after the decode: the load may have changed
    print("| quantity | per wall s | per CPU s |")
    print("|---|---|---|")
    print(f"| matmul parameters (Linear weights, lm_head included) | {params / 1e6:.1f} M | |")
    for label, w, c in (("before", wall, cpu), ("after", wall2, cpu2)):
        print(f"| matmul rate at batch {batch}, the model's weight shapes ({label} the decode) | "
              f"{2 * params * batch / w / 1e9:.1f} GFLOP/s | {2 * params * batch / c / 1e9:.1f} GFLOP/s |")
    bound, bound_cpu = batch / ((wall + wall2) / 2), batch / ((cpu + cpu2) / 2)
    print(f"| compute bound = rate / (2 x params), mean of before and after | {bound:.1f} tokens/s | "
          f"{bound_cpu:.1f} tokens/s |")
    print(f"| decode loop, batch {batch}, steady state ({n_new} more tokens per row) | {achieved:.1f} tokens/s | "
          f"{achieved_cpu:.1f} tokens/s |")
    print(f"| fraction of the bound | {achieved / bound:.2f} | {achieved_cpu / bound_cpu:.2f} |")
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
