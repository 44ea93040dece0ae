"""The budget-forcing protocol both backends follow (s1, arXiv 2501.19393): one module, imported by the
transformers loop (``generation``) and the vLLM request driver (``stream`` / ``vllm_backend``).

- **Decoding**: ``DecodingConfig`` (temperature, answer budget, s1's "Wait" extension and minimum thinking,
  the harness's answer allowance) and the ``Generation`` record of one (prompt, seed, budget).
- **Stop and trigger ids**: what ends a turn (``chat_stop_ids``: EOS ids plus ``<|im_end|>``), what means "the
  model ends its thinking" (``end_trigger_ids``), what ends an answer (``answer_stops_for``), and the exact
  "Wait" text fed instead of an end of thinking (``FormatRules`` holds them per format and tokenizer).
- **Forced ends**: at the cap, ``forced_end_ids`` (s1: ``[\\n]<|im_start|>answer\\nFinal Answer:``); after a natural
  stop, ``natural_end_ids``; the answer's own budget (``harness_answer_limit``) and seed (``answer_seed``).
- **Result assembly**: ``assemble`` turns one trace (thinking ids, where it ended by itself, where each "Wait"
  began, the answers per budget) into its records at every budget; a natural stop below B is the same record
  at every such B, exactly what a separate run at B would produce.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .formats import ThinkingFormat, cap_prefix, wait_text

DEFAULT_ANSWER_TOKENS = 4096  # s1 leaves the answer thousands of tokens (max_gen_toks 2048 for MATH, 32768 for AIME)


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding parameters. ``temperature == 0`` is greedy; ``waits`` > 0 is s1's extension mode.

    ``answer_tokens`` is the answer's own budget, counted apart from thinking; ``None`` decodes the answer
    until a stop token (bounded by the model's context). ``min_thinking`` is s1's ``min_tokens_thinking``:
    the end of thinking is suppressed until that many thinking tokens exist.

    ``max_gen_tokens`` is the answer allowance of s1's lm-eval harness (``max_gen_toks``, 32768 in the
    authors' ``eval_sequential_scaling.sh``), which replaces ``answer_tokens`` (leave that None): there the
    answer request is ``SamplingParams(max_tokens=max_gen_toks, stop=until)`` with the task's ``until: []``
    plus the EOS text, so the answer may use ``min(max_gen_tokens, context - tokens before it)`` tokens (vLLM
    ends a request at ``max_model_len``, by default the model's ``max_position_embeddings``) and stops only
    at end of sequence, not at the format's answer stops (s1's ``<|im_start|>``). See ``harness_answer_limit``.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    answer_tokens: int | None = DEFAULT_ANSWER_TOKENS
    waits: int = 0
    min_thinking: int = 0
    batch_size: int = 8
    max_gen_tokens: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.temperature >= 0, f"temperature={self.temperature} must be >= 0 (0 is greedy)"),
            (0 < self.top_p <= 1, f"top_p={self.top_p} must be in (0, 1]"),
            (self.top_k >= 0, f"top_k={self.top_k} must be >= 0 (0 disables top-k)"),
            (self.answer_tokens is None or self.answer_tokens >= 1,
             f"answer_tokens={self.answer_tokens} must be >= 1 (thousands for a full solution) or None "
             "(until a stop token)"),
            (self.waits >= 0, f"waits={self.waits} must be >= 0 (0 disables the extension mode)"),
            (self.min_thinking >= 0, f"min_thinking={self.min_thinking} must be >= 0 (0 disables it)"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
            (self.max_gen_tokens is None or self.max_gen_tokens >= 1,
             f"max_gen_tokens={self.max_gen_tokens} must be >= 1 (s1's harness: 32768) or None"),
            (self.max_gen_tokens is None or self.answer_tokens is None,
             f"answer_tokens={self.answer_tokens} and max_gen_tokens={self.max_gen_tokens} are both set; "
             "max_gen_tokens (the harness's answer allowance) replaces answer_tokens: set answer_tokens=None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DecodingConfig: {message}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> dict:
        """Every decoding parameter that changes a generation (``batch_size`` does not), for the cache key."""
        described = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                     "answer_tokens": self.answer_tokens, "waits": self.waits, "min_thinking": self.min_thinking}
        if self.max_gen_tokens is not None:  # only when set: records made before the key existed keep their keys
            described["max_gen_tokens"] = self.max_gen_tokens
        return described


@dataclass(frozen=True)
class Generation:
    """One (prompt, seed, budget) outcome of a sweep."""

    index: int             # position of the prompt in the input list
    seed: int
    budget: int
    thinking: str
    answer: str
    thinking_tokens: int   # thinking tokens used, forced "Wait"s included
    answer_tokens: int
    capped: bool           # the budget cut the thinking (False: the model stopped by itself)
    waits: int
    answer_capped: bool = False  # the answer budget cut the answer before a stop token
    forced: str = ""       # the text forced between thinking and answer (delimiter, cue)


def check_budgets(budgets) -> tuple[int, ...]:
    """Budgets as a strictly increasing tuple of token counts (0: no thinking at all)."""
    values = tuple(int(b) for b in budgets)
    if not values or any(b < 0 for b in values) or len(set(values)) != len(values):
        raise ValueError(f"budgets {list(budgets)} must be distinct token counts >= 0, e.g. 512,1024,2048")
    return tuple(sorted(values))


def eos_ids(*sources) -> set[int]:
    """Every EOS id named by ``sources`` (a tokenizer's ``eos_token_id``, a generation config's list, ...)."""
    ids: set[int] = set()
    for source in sources:
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    return ids


def chat_stop_ids(tokenizer, *eos_sources) -> set[int]:
    """The ids that end a turn: the tokenizer's EOS, every EOS id of ``eos_sources`` (a generation config's,
    a model artifact's), plus ``<|im_end|>`` (chat turn end) when the vocabulary has it."""
    ids = eos_ids(tokenizer.eos_token_id, *eos_sources)
    im_end = tokenizer.get_vocab().get("<|im_end|>")
    if im_end is not None:
        ids.add(im_end)
    return ids


def stop_token_ids(model, tokenizer) -> set[int]:
    """EOS ids from the tokenizer and the model's generation config, plus ``<|im_end|>`` if present."""
    return chat_stop_ids(tokenizer, getattr(getattr(model, "generation_config", None), "eos_token_id", None))


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def end_trigger_ids(tokenizer, fmt: ThinkingFormat, stops: set[int]) -> set[int]:
    """Tokens that mean "the model ends its thinking": the delimiter's first token, or EOS when it has none."""
    core = fmt.think_end.strip()
    return {encode(tokenizer, core)[0]} if core else set(stops)


def answer_stop_ids(tokenizer, fmt: ThinkingFormat, stops: set[int]) -> set[int]:
    """Tokens that end the answer: the end of turn plus the format's own (s1: ``<|im_start|>``)."""
    extra = set()
    for text in fmt.answer_stops:
        ids = encode(tokenizer, text)
        if len(ids) != 1:
            raise ValueError(f"answer stop {text!r} of format {fmt.name!r} is {len(ids)} tokens for this tokenizer; "
                             "answer stops must be single tokens (use the model's own special token)")
        extra.add(ids[0])
    return set(stops) | extra


def answer_stops_for(tokenizer, fmt: ThinkingFormat, stops: set[int], config: DecodingConfig) -> set[int]:
    """The answer's stop ids under ``config``: end of sequence only with s1's harness allowance
    (``max_gen_tokens``: its answer stops at ``until: []`` + EOS), else ``answer_stop_ids``."""
    return set(stops) if config.max_gen_tokens is not None else answer_stop_ids(tokenizer, fmt, stops)


def harness_answer_limit(config: DecodingConfig, used: int, context: int | None) -> int | None:
    """The answer's ``max_tokens`` after ``used`` tokens (prompt + thinking + forced end): ``answer_tokens``
    (None: until a stop token, up to the context); with ``max_gen_tokens`` the harness's allowance, capped where
    the context (``max_model_len``) ends, as vLLM caps it."""
    if config.max_gen_tokens is None:
        return config.answer_tokens
    if context is None:
        return config.max_gen_tokens
    return max(1, min(config.max_gen_tokens, int(context) - used))


def forced_end_ids(tokenizer, fmt: ThinkingFormat, thinking_ids: list[int]) -> list[int]:
    """Token ids appended at the cap, as s1 builds them: ``encode("\\n")`` (when needed) + ``encode(end + cue)``."""
    text = tokenizer.decode(thinking_ids, skip_special_tokens=False) if thinking_ids else ""
    return encode(tokenizer, cap_prefix(fmt, text)) + encode(tokenizer, fmt.think_end + fmt.answer_cue)


def natural_end_ids(tokenizer, fmt: ThinkingFormat, token: int, triggers: set[int]) -> list[int] | None:
    """What follows a natural stop ``token``: s1's forced ``<|im_start|>answer``, the model's own delimiter, or
    None when the model ended its turn (no answer follows)."""
    if fmt.natural_end is not None:
        return encode(tokenizer, fmt.natural_end)
    return [token] if token in triggers else None


def answer_seed(seed: int, budget: int) -> int:
    """The seed of the answer branched at ``budget`` (both backends use it)."""
    return int(seed) * 1_000_003 + int(budget)


class FormatRules:
    """Token ids a format needs on this tokenizer (computed once per format): end-of-thinking triggers, every
    id that ends thinking (``ends``: triggers and turn stops), the answer's stops and the "Wait" ids."""

    def __init__(self, tokenizer, fmt: ThinkingFormat, stops: set[int], config: DecodingConfig):
        self.tokenizer, self.fmt, self.config, self.stops = tokenizer, fmt, config, set(stops)
        self.triggers = end_trigger_ids(tokenizer, fmt, self.stops)
        self.ends = self.triggers | self.stops
        self.answer_stops = answer_stops_for(tokenizer, fmt, self.stops, config)
        self.wait_ids = encode(tokenizer, wait_text(fmt))


def assemble(tokenizer, index: int, seed: int, budgets, thinking: list[int], natural_at: int | None,
             wait_starts: list[int], answers: Mapping) -> list[Generation]:
    """One trace's records at every budget.

    ``thinking``: its thinking ids (up to the largest budget); ``natural_at``: the thinking length where the
    model ended its thinking by itself (None: it never did); ``wait_starts``: where each forced "Wait" began;
    ``answers``: owner -> (answer ids, answer capped, forced ids between thinking and answer), the owner being
    the budget of a forced end, or None for the natural end (a missing owner: no answer, e.g. the model ended
    its turn). A natural stop below B is the same record at every such B."""
    out = []
    for budget in budgets:
        natural = natural_at is not None and natural_at < budget
        think = thinking if natural else thinking[:budget]
        answer, answer_capped, forced = answers.get(None if natural else budget, ([], False, []))
        out.append(Generation(
            index=index, seed=int(seed), budget=budget, thinking=tokenizer.decode(think, skip_special_tokens=False),
            answer=tokenizer.decode(answer, skip_special_tokens=True), thinking_tokens=len(think),
            answer_tokens=len(answer), capped=not natural, waits=sum(start < budget for start in wait_starts),
            answer_capped=answer_capped, forced=tokenizer.decode(forced, skip_special_tokens=False)))
    return out
