"""What a study's 04 cells generate: problems, prompt lengths and tokens, for the kit and for the authors' scripts.

**The kit** (issue 19's design: one engine per model variant, requests streamed, each (problem, seed) thinks
once to the largest budget and every budget's answer branches off that prefix, which vLLM's prefix cache
still holds): per (problem, seed) ``max(budgets)`` thinking tokens (an upper bound: every trace thinks to its
budget) plus one answer per budget.

**The authors' scripts** (OCM-7898/TTS-Pruning, ``eval/eval_sequential_scaling.sh``): one ``lm_eval`` run per
(task, budget, seed), each a fresh vLLM engine that regenerates the thinking from scratch up to that budget and
then answers; s1's harness sends the answer as a new prompt (prompt + thinking + cue) and this plan assumes
vLLM's prefix caching is off there (vLLM 0.6's default in s1's era), so that prompt is prefilled again.

Answers are assumed to average ``answer_mean`` tokens (a stated assumption: read the records' ``answer_tokens``
after the first cells), never more than their allowance; the worst case fills the allowance. The allowance
(``allowance``) is what the generation code gives the answer (``tts.generation.harness_answer_limit``):
``answer_tokens``, or with ``max_gen_tokens`` (s1 harness's ``max_gen_toks``, 32768 in the paper)
``min(max_gen_tokens, context - prompt - thinking - forced end)``, as vLLM ends a request where the context
(``max_model_len``) ends. Thinking is planned to its budget (the upper bound) and prompts at their mean.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

# Published sizes, used when the benchmark files are not here (`make data` puts them in data/benchmarks/).
PUBLISHED_SIZES = {"math500": 500, "aime24": 30, "amc23": 40, "gpqa-diamond": 198, "gsm8k": 1319}
# Prompt length when the files are absent: chat template + problem, tokens (max, mean); an assumption.
DEFAULT_PROMPT = (1024, 256)
CHARS_PER_TOKEN = 3.0   # conservative for English and LaTeX with Qwen's BPE (~3.5-4 in practice)
TEMPLATE_TOKENS = 32    # chat markers, system turn and the thinking delimiter
FORCED_END = 16         # tokens of the forced end of thinking and answer cue (s1's is 8-10)


@dataclass(frozen=True)
class Problems:
    """A benchmark's problem count (after ``limit``) and prompt tokens (longest, mean)."""

    name: str
    count: int
    prompt_max: int
    prompt_mean: float
    measured: bool  # True: counted and measured from the files here; False: published size, assumed prompts


@functools.lru_cache(maxsize=64)
def problems(name: str, limit: int | None) -> Problems:
    from ..tts.benchmarks import BENCHMARKS, available, load_benchmark

    if name not in BENCHMARKS or available(name):
        try:
            rows = load_benchmark(name, limit=limit)
        except (FileNotFoundError, ImportError):
            rows = None
        if rows:
            lengths = [len(r["problem"]) / CHARS_PER_TOKEN + TEMPLATE_TOKENS for r in rows]
            return Problems(name, len(rows), int(max(lengths)) + 1, sum(lengths) / len(lengths), True)
    if name not in PUBLISHED_SIZES:
        raise ValueError(f"cannot count the problems of benchmark {name!r}: its files are not here and its size is "
                         f"not known; run `make data`, or plan with a benchmark of {sorted(PUBLISHED_SIZES)}")
    count = PUBLISHED_SIZES[name] if not limit else min(limit, PUBLISHED_SIZES[name])
    return Problems(name, count, DEFAULT_PROMPT[0], DEFAULT_PROMPT[1], False)


@dataclass(frozen=True)
class Generation:
    """Tokens one engine run generates and prefills, with the token-weighted mean context of its decoding."""

    sequences: int
    generated: float
    context: float
    prefill: float
    starts: int

    @staticmethod
    def combine(parts: list[Generation]) -> Generation:
        generated = sum(p.generated for p in parts)
        context = sum(p.generated * p.context for p in parts) / generated if generated else 0.0
        return Generation(sum(p.sequences for p in parts), generated, context, sum(p.prefill for p in parts),
                          sum(p.starts for p in parts))


def allowance(budget: int, answer_tokens: int, max_gen_tokens: int | None, prompt: float = 0.0,
              context: int | None = None) -> int:
    """The most tokens an answer at ``budget`` may take after ``prompt`` tokens, thinking to the budget and the
    forced end, in a ``context`` of positions (None: no limit); see the module docstring."""
    from ..tts.generation import DecodingConfig, harness_answer_limit  # the generation's own rule

    used = int(prompt) + budget + FORCED_END
    if max_gen_tokens:
        return int(harness_answer_limit(DecodingConfig(answer_tokens=None, max_gen_tokens=max_gen_tokens), used,
                                        context))
    # answer_tokens: the generation gives it whole; vLLM still ends the request at the context
    return answer_tokens if context is None else max(1, min(answer_tokens, int(context) - used))


def _answer(budget: int, answer: int | None, allowed: dict) -> int:
    """The answer length planned at ``budget``: the assumed mean, never above the allowance (None: the allowance)."""
    cap = allowance(budget, **allowed)
    return cap if answer is None else min(answer, cap)


def kit_generation(p: Problems, budgets, sequences_per_problem: int, answer: int | None, answer_tokens: int,
                   max_gen_tokens: int | None = None, context: int | None = None) -> Generation:
    """One benchmark in the kit's sweep; ``answer`` tokens per answer (None: the worst case, the allowance)."""
    n = p.count * sequences_per_problem
    top = max(budgets)
    allowed = dict(answer_tokens=answer_tokens, max_gen_tokens=max_gen_tokens, prompt=p.prompt_mean, context=context)
    answers = [(b, _answer(b, answer, allowed)) for b in budgets]
    think = n * top
    spoken = n * sum(a for _, a in answers)
    context = (think * (p.prompt_mean + top / 2)
               + n * sum(a * (p.prompt_mean + b + a / 2) for b, a in answers)) / max(think + spoken, 1)
    prefill = n * (p.prompt_mean + FORCED_END * len(budgets))  # answers reuse the cached thinking prefix
    return Generation(n, think + spoken, context, prefill, 0)


def authors_generation(p: Problems, budget: int, sequences_per_problem: int, answer: int | None,
                       answer_tokens: int, max_gen_tokens: int | None = None, context: int | None = None) -> Generation:
    """One ``lm_eval`` run of the authors' scripts: one benchmark at one budget and seed."""
    n = p.count * sequences_per_problem
    a = _answer(budget, answer, dict(answer_tokens=answer_tokens, max_gen_tokens=max_gen_tokens, prompt=p.prompt_mean,
                                     context=context))
    tokens = n * (budget + a)
    context = (n * budget * (p.prompt_mean + budget / 2) + n * a * (p.prompt_mean + budget + a / 2)) / max(tokens, 1)
    prefill = n * (2 * p.prompt_mean + budget + FORCED_END)  # the answer prompt is prefilled from scratch
    return Generation(n, tokens, context, prefill, 1)
