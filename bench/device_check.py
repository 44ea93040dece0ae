"""Check the accelerator paths against the CPU fp32 reference, and rehearse the paper's steps on one GPU.

    python bench/device_check.py --model toy-reasoner --benchmark toy-reasoning --limit 64
    python bench/device_check.py --rehearsal            # the GPU dress rehearsal (below), ~10 min on one H200
    python bench/device_check.py --rehearsal --dry-run  # the same steps at tiny shapes, on CPU in seconds

**Agreement** (the default):

1. Wanda pruning on CPU fp32, CUDA fp32 and CUDA bf16 with the same calibration tokens: achieved
   global sparsity of each and the share of mask entries that agree with the CPU fp32 masks.
2. Budget-forced greedy evaluation (transformers backend) of the dense and the Wanda-pruned model on
   CPU fp32 and CUDA bf16: accuracy per budget, agreement of per-record correctness, tokens/s ratio.
Without CUDA it runs the CPU part only and says so. Numbers are printed, never asserted.

**Rehearsal** (``--rehearsal``, issue 19): random-init models of s1.1-7B's and Qwen3-8B's real shapes (the
configs shipped in ``data/model_configs/``) in bf16 on one GPU through the transformers backend, with a
synthetic word-level tokenizer of the model's full vocabulary and its thinking delimiters (no download):
Wanda 20% at 128 x 2048 random-token calibration (``tts_prune.prune``), a two-budget sweep up to 8,192 thinking
tokens on a few prompts (``tts_prune.evaluate``; random weights rarely stop, so thinking reaches the budget: the
worst case), and the divergence of the pruned model on the dense model's 8k-token traces
(``tts_prune.trace_divergence``). For each step: peak GPU memory (``torch.cuda.max_memory_allocated``, reset
before the step) and seconds, beside what ``tts-prune plan`` predicts for the same step (for the sweep, the
plan's seconds are its vLLM roofline at the same batch: the gap is what the transformers loop costs more than a
serving engine; its memory is the transformers backend's formula). ``--dry-run`` shrinks
the shapes (2 blocks, hidden 64, vocabulary 512) and the settings so the whole path runs on a CPU in seconds.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import tempfile
import time
from pathlib import Path

import torch

import tts_prune
from tts_prune.models.layers import decoder_layers, prunable_linears, weight_matrix


def masks(model) -> list[torch.Tensor]:
    return [weight_matrix(m).eq(0).cpu() for block in decoder_layers(model) for m in prunable_linears(block).values()]


def agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    same = sum(int((x == y).sum()) for x, y in zip(a, b))
    return same / sum(x.numel() for x in a)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rehearsal", action="store_true", help="the GPU dress rehearsal instead of the agreement check")
    parser.add_argument("--dry-run", action="store_true", help="rehearsal at tiny shapes (runs on a CPU)")
    parser.add_argument("--models", default="simplescaling/s1.1-7B,Qwen/Qwen3-8B", help="rehearsal: shipped configs")
    parser.add_argument("--prompts", type=int, default=4, help="rehearsal: prompts in the sweep")
    parser.add_argument("--model", default="toy-reasoner")
    parser.add_argument("--benchmark", default="toy-reasoning")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--budgets", default=None, help="comma-separated; default: the toy reasoner's sweep")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibration", default="gsm8k", help="calibration source (see PruneConfig.calibration)")
    args = parser.parse_args(argv)
    if args.rehearsal:
        rehearse(args)
        return
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


# ------------------------------------------------------------------------------------------ rehearsal
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
FORMAT = {"qwen2": "s1", "qwen3": "qwen3"}  # s1.1 is a Qwen2; anything else: the generic format


def synthetic_tokenizer(vocab: int):
    """A word-level tokenizer with exactly ``vocab`` ids ("w5" .. "w<vocab-1>" after the chat and thinking
    specials), so any id a random model samples decodes and re-encodes to itself."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {t: i for i, t in enumerate(SPECIALS)}
    words.update({f"w{i}": i for i in range(len(SPECIALS), vocab)})
    core = Tokenizer(models.WordLevel(words, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=SPECIALS[1:2] + SPECIALS[3:])
    tokenizer.chat_template = CHAT
    return tokenizer


def rehearsal_config(model: str, dry_run: bool):
    """The shipped config, or (dry run) the same family shrunk to 2 blocks of width 64 and 512 ids."""
    from tts_prune.study.shapes import load_config

    config = load_config(model)
    if dry_run:
        for key, value in dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=16, vocab_size=512, max_window_layers=2).items():
            setattr(config, key, value)
    config.eos_token_id = SPECIALS.index("<|im_end|>")
    config.bos_token_id = config.pad_token_id = 0
    return config


class Measured:
    """Seconds and peak device memory of a block (``torch.cuda.max_memory_allocated``, reset at entry)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.began
        self.peak = torch.cuda.max_memory_allocated() if self.cuda else None
        return False


def rehearse(args) -> list:
    """Wanda, a two-budget sweep and the divergence step on random-init models of the paper's shapes."""
    from transformers import AutoModelForCausalLM

    from tts_prune.study import steps as plan_steps
    from tts_prune.study.hardware import GiB, EngineModel, accelerator
    from tts_prune.study.shapes import shape_from_config

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        raise SystemExit("the rehearsal needs a CUDA device (it rehearses 7-8B models); use --dry-run on a CPU")
    device = "cuda" if cuda else "cpu"
    dtype = "bfloat16" if cuda else "float32"
    gpu = accelerator("h200-141gb" if cuda and torch.cuda.get_device_properties(0).total_memory > 100 * GiB
                      else "h100-80gb" if cuda else "cpu")
    if cuda:
        gpu = accelerator(gpu.name, torch.cuda.get_device_properties(0).total_memory / GiB)
    engine = EngineModel()
    unit, scale = ("MiB", 1024 ** 2) if args.dry_run else ("GiB", GiB)
    nsamples, seqlen = (4, 64) if args.dry_run else (128, 2048)
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else [16, 32] if args.dry_run else [4096, 8192]
    answer_tokens = 8 if args.dry_run else 32
    print(f"rehearsal on {torch.cuda.get_device_name() if cuda else 'CPU'} ({gpu.memory_gib:.1f} GiB), {dtype}; "
          f"plan device: {gpu.name}; Wanda {nsamples} x {seqlen}; budgets {budgets}; {args.prompts} prompts")
    out = Path(tempfile.mkdtemp(prefix="tts-prune-rehearsal-"))
    problems = out / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)})
                                + "\n" for i in range(args.prompts)))
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        config = rehearsal_config(name, args.dry_run)
        shape = shape_from_config(config, name)
        tokenizer = synthetic_tokenizer(config.vocab_size)
        fmt = FORMAT.get(config.model_type, "generic")
        torch.manual_seed(0)
        with Measured(device) as m:
            with torch.device(device):
                dense = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).eval()
        rows.append((name, "random init", m, shape.weight_bytes(dtype), None))
        pruned = copy.deepcopy(dense)
        ids = torch.randint(len(SPECIALS), config.vocab_size, (nsamples, seqlen), generator=torch.Generator().manual_seed(0))
        prune_config = tts_prune.PruneConfig(method="wanda", sparsity=0.2, nsamples=nsamples, seqlen=seqlen)
        with Measured(device) as m:
            result = tts_prune.prune(pruned, tokenizer, prune_config, calibration=ids, show_progress=False)
        # the plan counts one model; the rehearsal holds the dense copy too
        predicted = plan_steps.pruning_step(shape, gpu, engine, "wanda", dtype, nsamples, seqlen)
        rows.append((name, f"wanda 20% ({result.global_sparsity:.3f})", m,
                     predicted.peak_bytes + shape.weight_bytes(dtype), predicted.seconds))
        with Measured(device) as m:
            records = tts_prune.evaluate((dense, tokenizer), str(problems), budgets, backend="transformers",
                                         batch_size=args.prompts, answer_tokens=answer_tokens, thinking_format=fmt,
                                         out=out / f"records-{shape.layers}-{shape.hidden}", show_progress=False)
        prompt = len(tokenizer(records["prompt"].iloc[0])["input_ids"]) if "prompt" in records else 32
        columns = prompt + max(budgets) + answer_tokens + 16
        predicted = plan_steps.transformers_generation_step(shape, dtype, args.prompts, len(budgets), columns, prompt)
        thinking = records.groupby("problem_id")["thinking_tokens"].max()
        tokens = int(thinking.sum() + records["answer_tokens"].sum())
        rate = engine.decode_rate(shape, gpu, dtype, args.prompts, prompt + max(budgets) / 2)
        rows.append((name, f"sweep {budgets}: {tokens} tokens, thinking {int(thinking.min())}-{int(thinking.max())}",
                     m, predicted.peak_bytes + shape.weight_bytes(dtype), tokens / rate))
        traces = records[records["budget"] == max(budgets)]
        with Measured(device) as m:
            kl = tts_prune.trace_divergence(dense, pruned, tokenizer, traces, batch_size=1, max_traces=2)
        length = prompt + max(budgets)
        streamed = plan_steps.divergence_settings(1)  # as trace_divergence runs it
        predicted = plan_steps.divergence_step(shape, gpu, engine, dtype, 2, length, *streamed)
        whole = plan_steps.divergence_step(shape, gpu, engine, dtype, 2, length, 1, None)
        rows.append((name, f"divergence, 2 traces of {length} (whole-trace code: {whole.peak_bytes / scale:.1f} {unit})",
                     m, predicted.peak_bytes, predicted.seconds))
        print(f"  {name}: KL mean {tts_prune.divergence_summary(kl)['kl_mean']:.4f} over {len(kl)} positions")
        del dense, pruned
    print(f"{'model':24s} {'step':64s} {'peak ' + unit:>9s} {'plan ' + unit:>9s} {'seconds':>8s} {'plan s':>8s}")
    for name, step, m, plan_bytes, plan_seconds in rows:
        peak = f"{m.peak / scale:9.2f}" if m.peak is not None else f"{'n/a':>9s}"
        plan_s = f"{plan_seconds:8.1f}" if plan_seconds is not None else f"{'':8s}"
        print(f"{name:24s} {step:64s} {peak} {plan_bytes / scale:9.2f} {m.seconds:8.1f} {plan_s}")
    return rows


if __name__ == "__main__":
    main()
