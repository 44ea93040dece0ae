"""``tts-prune info``: the smoke path of the kit (load a model, discover its layers, summarise)."""
from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .embedded import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local dir, .gguf file or hub id")
    parser.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    from .layers import layer_summary
    from .loading import load_model

    start = time.perf_counter()
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
    seconds = time.perf_counter() - start
    table = layer_summary(model)
    total = sum(p.numel() for p in model.parameters())
    print(f"model      {args.model} ({type(model).__name__}, {model.dtype}, {model.device}), loaded in {seconds:.1f} s")
    print(f"vocabulary {len(tokenizer)} tokens; chat template: {'yes' if tokenizer.chat_template else 'no'}")
    print(f"decoder    {len(table)} blocks of {table['block'].iloc[0]}; linears per block: {table['linears'].iloc[0]}")
    print(f"parameters {total:,} total, {int(table['prunable_params'].sum()):,} prunable "
          f"({table['prunable_params'].sum() / total:.1%}) in decoder linears")
    print(table[["layer", "params", "prunable_params"]].to_string(index=False))
    return 0
