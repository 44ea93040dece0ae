"""``evaluate``: a benchmark x budget sweep with budget forcing, graded, stored, returned as a tidy frame.

One record per (model, recipe, benchmark, problem, budget, seed), written to an append-only store
(``tts_prune.tts.results``) one shard per batch, so a rerun skips what is done and a crash loses at most
one batch. The backend is the transformers decode loop (``tts_prune.tts.generation``) or vLLM
(``tts_prune.tts.vllm_backend``); ``backend="auto"`` picks vLLM when CUDA and vLLM are both present.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from .benchmarks import load_benchmark, resolve
from .generation import DecodingConfig, check_budgets, sweep_batch
from .grading import extract_answer, extract_letter, grade_with
from .formats import build_prompt, detect_format, get_format
from .results import ResultStore, load_results, record_key  # noqa: F401  (load_results re-exported)

BACKENDS = ("auto", "transformers", "vllm")
COLUMNS = ["problem_id", "budget", "seed", "correct", "thinking_tokens", "capped", "answer_tokens", "waits",
           "benchmark", "model", "recipe", "prediction"]


def grade(benchmark: str, response: str, gold: str) -> bool:
    """Grade ``response`` against ``gold`` with ``benchmark``'s grader (math, numeric or letter)."""
    return grade_with(resolve(benchmark)[0].grader, response, gold)


def pick_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; use one of {BACKENDS}")
    if backend != "auto":
        return backend
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def _load(model_or_path, backend: str, model_name: str | None):
    """(model, tokenizer, name, fingerprint); vLLM keeps the reference and loads inside its backend."""
    from ..models.loading import load_model, model_fingerprint

    if isinstance(model_or_path, (tuple, list)):
        model, tokenizer = model_or_path
        name = model_name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        return model, tokenizer, name, model_fingerprint(model)
    if backend == "vllm":
        return None, None, model_name or str(model_or_path), None
    model, tokenizer = load_model(model_or_path)
    return model, tokenizer, model_name or str(model_or_path), model_fingerprint(model)


def _response(g) -> str:
    # The graded text: the answer; when the model answered inside its thinking (generic format, natural
    # stop with no answer part) the whole text.
    return g.answer if g.answer.strip() else g.thinking


def evaluate(model_or_path, benchmark: str, budgets, limit: int | None = None, samples: int = 1,
             seeds=None, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, answer_tokens: int = 64,
             waits: int = 0, thinking_format=None, backend: str = "auto", batch_size: int = 8,
             recipe: dict | None = None, out=None, model_name: str | None = None, benchmark_seed: int = 0,
             tensor_parallel_size: int = 1, vllm_options: dict | None = None,
             show_progress: bool = True) -> pd.DataFrame:
    """Evaluate a model on ``benchmark`` at every thinking budget; one row per problem x budget x sample.

    ``model_or_path``: a loaded ``(model, tokenizer)`` pair or a reference for ``load_model``.
    ``seeds`` (explicit sample seeds) default to ``range(samples)``; greedy decoding uses one seed, 0.
    ``recipe`` (a pruning recipe dict) is stored for provenance. ``out`` is the results folder
    (default ``paths.RESULTS_DIR``); finished records found there are reused, not regenerated.
    ``vllm_options`` go to ``vllm.LLM`` (e.g. ``{"gpu_memory_utilization": 0.3}``, on CPU a share of RAM).
    """
    budgets = check_budgets(budgets)
    if samples < 1:
        raise ValueError(f"samples={samples} must be >= 1")
    seeds = [int(s) for s in (seeds if seeds is not None else range(samples))]
    if temperature == 0:
        seeds = seeds[:1]  # greedy: every seed gives the same text
    config = DecodingConfig(temperature=temperature, top_p=top_p, top_k=top_k, answer_tokens=answer_tokens,
                            waits=waits, batch_size=batch_size)
    backend = pick_backend(backend)
    spec, _ = resolve(benchmark)
    problems = load_benchmark(benchmark, limit, benchmark_seed)
    model, tokenizer, name, fingerprint = _load(model_or_path, backend, model_name)
    store = ResultStore(out)
    recipe = dict(recipe or {})
    decoding = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "answer_tokens": answer_tokens,
                "waits": waits}
    base = {"model": name, "recipe": recipe, "benchmark": spec.name, "decoding": decoding}
    done = store.keys()

    def key(problem, budget, seed):
        return record_key({**base, "problem_id": problem["id"], "budget": budget, "seed": seed})

    todo = [(p, s) for p in problems for s in seeds if any(key(p, b, s) not in done for b in budgets)]
    if backend == "vllm":
        from .vllm_backend import VLLMBackend

        engine = VLLMBackend(model_or_path if model is None else name, tensor_parallel_size=tensor_parallel_size,
                             **(vllm_options or {}))
        tokenizer, fingerprint = engine.tokenizer, fingerprint or engine.fingerprint
    fmt = get_format(thinking_format) if thinking_format is not None else detect_format(tokenizer)
    provenance = {"model_hash": fingerprint, "package_version": __version__, "backend": backend,
                  "format": fmt.name}
    chunk = batch_size if backend == "transformers" else max(len(todo), 1)
    bar = tqdm(total=len(todo) * len(budgets), desc=f"eval {spec.name}", disable=not show_progress)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        prompts = [build_prompt(tokenizer, p["problem"], fmt) for p, _ in part]
        began = time.perf_counter()
        if backend == "vllm":
            gens = engine.sweep(prompts, [s for _, s in part], budgets, fmt, config)
        else:
            gens = sweep_batch(model, tokenizer, prompts, [s for _, s in part], budgets, fmt, config)
        seconds = time.perf_counter() - began
        records = []
        for g in gens:
            problem, seed = part[g.index]
            response = _response(g)
            pred = extract_letter(response) if spec.grader == "choice" else extract_answer(response)
            records.append({**base, **provenance, "problem_id": problem["id"], "budget": g.budget, "seed": seed,
                            "correct": bool(grade_with(spec.grader, response, problem["answer"])),
                            "gold": problem["answer"], "prediction": pred, "prompt": prompts[g.index],
                            "thinking": g.thinking, "answer": g.answer, "thinking_tokens": g.thinking_tokens,
                            "answer_tokens": g.answer_tokens, "capped": g.capped, "waits": g.waits,
                            "batch_seconds": seconds, "secret": spec.secret})
        records = [r for r in records if record_key(r) not in done]
        store.append(records)
        bar.update(len(gens))
    bar.close()
    frame = load_results(store.root)
    if frame.empty:
        return frame.reindex(columns=COLUMNS)
    wanted = {key(p, b, s) for p in problems for s in seeds for b in budgets}
    frame = frame[frame["key"].isin(wanted)].sort_values(["problem_id", "seed", "budget"]).reset_index(drop=True)
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


# ----------------------------------------------------------------------------- CLI `tts-prune eval`
def add_arguments(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, local dir, .gguf or hub id")
    parser.add_argument("--benchmark", default="gsm8k", help="registered name or path to a .jsonl file")
    parser.add_argument("--budgets", default="512,1024,2048", help="comma-separated thinking budgets (tokens)")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--samples", type=int, default=1, help="samples per problem (seeds 0..N-1)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--answer-tokens", type=int, default=64, help="answer budget after the forced end")
    parser.add_argument("--waits", type=int, default=0, help="s1 extension: append 'Wait' up to N times")
    parser.add_argument("--format", default=None, help="thinking format: qwen3, s1, toy, generic (default: detect)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="vLLM memory share (on CPU: of RAM; lower it when memory is short)")
    parser.add_argument("--out", default=None, help="results folder (default results/)")


def run(args) -> int:
    budgets = [int(b) for b in str(args.budgets).split(",") if b.strip()]
    frame = evaluate(args.model, args.benchmark, budgets, limit=args.limit, samples=args.samples,
                     temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                     answer_tokens=args.answer_tokens, waits=args.waits, thinking_format=args.format,
                     backend=args.backend, batch_size=args.batch_size,
                     tensor_parallel_size=args.tensor_parallel_size, out=args.out,
                     vllm_options={} if args.gpu_memory_utilization is None
                     else {"gpu_memory_utilization": args.gpu_memory_utilization})
    from .stats import accuracy_table

    print(accuracy_table(frame, by=["budget"]).round(3).to_string())
    return 0
