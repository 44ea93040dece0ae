"""``tts-prune eval``: one model, one benchmark, every budget through ``evaluation.evaluate``; prints accuracy."""
from __future__ import annotations

from .answer_budget import AUTO
from .backends import BACKENDS
from .evaluation import evaluate


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, local dir, .gguf or hub id")
    parser.add_argument("--benchmark", default="gsm8k", help="registered name or path to a .jsonl file")
    parser.add_argument("--budgets", default="512,1024,2048", help="comma-separated thinking budgets (tokens)")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--samples", type=int, default=1, help="samples per problem (seeds 0..N-1)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--answer-tokens", type=int, default=None,
                        help="answer budget after the end of thinking (0: until a stop token; default: the model "
                             "card's, else the thinking format's, else s1's 4096)")
    parser.add_argument("--max-gen-tokens", type=int, default=None,
                        help="s1 harness's answer allowance (32768 in the paper): replaces --answer-tokens")
    parser.add_argument("--waits", type=int, default=0, help="s1 extension: append 'Wait' up to N times")
    parser.add_argument("--min-thinking", type=int, default=0, help="s1: suppress the end of thinking until N tokens")
    parser.add_argument("--format", default=None, help="thinking format: s1, qwen3, r1, generic, toy (default: detect)")
    parser.add_argument("--grade-thinking", action="store_true",
                        help="also credit an answer inside thinking that the budget cut off (off by default)")
    parser.add_argument("--grading", default="kit",
                        help="grading protocol(s), comma-separated: kit, s1-harness (the paper's harness rules)")
    parser.add_argument("--judge-url", default=None, help="s1-harness judge: OpenAI-compatible base URL, e.g. "
                        "https://api.openai.com/v1 (default: none, the offline fallback)")
    parser.add_argument("--judge-model", default="gpt-4o-mini", help="s1-harness judge model (the paper's)")
    parser.add_argument("--judge-key-env", default=None, help="environment variable holding the judge's API key")
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--data-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="vLLM memory share (on CPU: of RAM; lower it when memory is short)")
    parser.add_argument("--out", default=None, help="results folder (default results/)")


def run(args) -> int:
    budgets = [int(b) for b in str(args.budgets).split(",") if b.strip()]
    frame = evaluate(args.model, args.benchmark, budgets, limit=args.limit, samples=args.samples,
                     temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                     answer_tokens=AUTO if args.answer_tokens is None else args.answer_tokens or None, max_gen_tokens=args.max_gen_tokens, waits=args.waits,
                     min_thinking=args.min_thinking,
                     thinking_format=args.format, grade_thinking=args.grade_thinking, backend=args.backend,
                     batch_size=args.batch_size, tensor_parallel_size=args.tensor_parallel_size,
                     data_parallel_size=args.data_parallel_size, out=args.out,
                     grading=[g.strip() for g in str(args.grading).split(",") if g.strip()],
                     judge={"base_url": args.judge_url, "model": args.judge_model, "api_key_env": args.judge_key_env}
                     if args.judge_url else None,
                     vllm_options={} if args.gpu_memory_utilization is None
                     else {"gpu_memory_utilization": args.gpu_memory_utilization})
    from .stats import accuracy_table

    print(accuracy_table(frame, by=["budget"]).round(3).to_string())
    return 0
