"""The transformers backend: batched budget-forced generation with an incremental budget sweep.

For budgets B1 < ... < Bk the thinking trace is generated ONCE, up to Bk tokens, and the answer is
branched off at every Bi from a copy of the KV cache at that point (s1's budget forcing, arXiv
2501.19393): the format's forced end (s1: ``[\\n]<|im_start|>answer\\nFinal Answer:``) is appended and the
answer is decoded with its own budget (``answer_tokens``, thousands by default, or until a stop token).
A row that ends its thinking by itself after t tokens goes on into its own answer (in the s1 format
after the forced ``<|im_start|>answer``, as s1 does); its record is the same "natural stop" record at
every budget B > t, exactly what a separate run at B would produce. Rows advance in lockstep, one token
per step, so for all rows the cache column of thinking token j is P + j (P: left-padded prompt length)
and one snapshot per budget serves the batch.

Extension mode and minimum thinking follow s1's ``vllm_causallms.py``: an attempt to end the thinking
(the end delimiter's first token or an end-of-turn token) is dropped and the exact text "Wait" is fed
instead, after which at least one token is generated before the thinking may end again (vLLM's
``min_tokens=1``); ``min_thinking`` suppresses every end of thinking until that many thinking tokens.

Sampling draws every row from its own ``torch.Generator`` (seeded by the sample seed for thinking and
by (seed, budget) for a branched answer), so a row's tokens do not depend on its batch neighbours.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .formats import ThinkingFormat, cap_prefix, wait_text

THINK, ANSWER, DONE = 0, 1, 2  # row states in the decode loop
DEFAULT_ANSWER_TOKENS = 4096  # s1 leaves the answer thousands of tokens (max_gen_toks 2048 for MATH, 32768 for AIME)


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding parameters. ``temperature == 0`` is greedy; ``waits`` > 0 is s1's extension mode.

    ``answer_tokens`` is the answer's own budget, counted apart from thinking; ``None`` decodes the answer
    until a stop token (bounded by the model's context). ``min_thinking`` is s1's ``min_tokens_thinking``:
    the end of thinking is suppressed until that many thinking tokens exist.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    answer_tokens: int | None = DEFAULT_ANSWER_TOKENS
    waits: int = 0
    min_thinking: int = 0
    batch_size: int = 8

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
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DecodingConfig: {message}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def describe(self) -> dict:
        """Every decoding parameter that changes a generation (``batch_size`` does not), for the cache key."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "answer_tokens": self.answer_tokens, "waits": self.waits, "min_thinking": self.min_thinking}


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


def stop_token_ids(model, tokenizer) -> set[int]:
    """EOS ids from the tokenizer and generation config, plus ``<|im_end|>`` (chat turn end) if present."""
    generation_config = getattr(model, "generation_config", None)
    ids = eos_ids(tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None))
    im_end = tokenizer.get_vocab().get("<|im_end|>")
    if im_end is not None:
        ids.add(im_end)
    return ids


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


def sample_next(logits: torch.Tensor, config: DecodingConfig, generators: list) -> torch.Tensor:
    """Next token per row from ``logits`` (R, V): argmax, or temperature/top-k/top-p with each row's generator."""
    if config.greedy:
        return logits.argmax(-1)
    scores = logits.float() / config.temperature
    if config.top_k:
        kth = torch.topk(scores, min(config.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if config.top_p < 1:
        # Keep the smallest prefix of the sorted distribution whose mass reaches top_p (nucleus sampling).
        sorted_scores, order = scores.sort(-1, descending=True)
        mass = sorted_scores.softmax(-1).cumsum(-1)
        drop = (mass - sorted_scores.softmax(-1)) >= config.top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    probs = scores.softmax(-1)
    return torch.stack([torch.multinomial(probs[r], 1, generator=g)[0] for r, g in enumerate(generators)])


def _generator(seed: int, device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) % (2**63))
    return generator


def answer_seed(seed: int, budget: int) -> int:
    """The seed of the answer branched at ``budget`` (both backends use it)."""
    return int(seed) * 1_000_003 + int(budget)


def _forward(model, ids: torch.Tensor, mask: torch.Tensor, cache):
    # Left padding: positions count real tokens only, so each row sees the positions of an unpadded run.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    return out.logits[:, -1, :], out.past_key_values


def _answer_limit(model, config: DecodingConfig, used: int) -> int:
    """The answer budget; ``None`` (until a stop token) is what the context leaves after ``used`` tokens
    (vLLM's ``max_tokens=None``: up to ``max_model_len``)."""
    if config.answer_tokens is not None:
        return config.answer_tokens
    return max(1, int(getattr(model.config, "max_position_embeddings", None) or 32768) - used)


class _Row:
    """Mutable per-row state of the decode loop."""

    def __init__(self, generator):
        self.state = THINK
        self.generator = generator
        self.thinking: list[int] = []
        self.answer: list[int] = []
        self.forced: list[int] = []   # tokens to emit instead of sampling ("Wait", s1's "<|im_start|>answer")
        self.forced_end: list[int] = []  # what followed the natural stop
        self.fresh = True             # no token sampled since the start or the last "Wait" (s1: min_tokens=1)
        self.waits = 0
        self.wait_starts: list[int] = []  # thinking positions where a forced "Wait" begins
        self.natural_at: int | None = None  # thinking length when the model ended thinking by itself
        self.answer_capped = False
        self.limit = 0                # the answer budget once the row is answering


def _suppress(logits: torch.Tensor, rows: list[_Row], config: DecodingConfig, ends: list[int]) -> torch.Tensor:
    """Mask the end of thinking for rows below ``min_thinking`` or right after a "Wait" (vLLM's min_tokens)."""
    blocked = [r for r, row in enumerate(rows) if row.state == THINK and not row.forced and (
        len(row.thinking) < config.min_thinking or (config.waits > 0 and row.fresh))]
    if not blocked or not ends:
        return logits
    logits = logits.clone()
    logits[torch.tensor(blocked)[:, None], torch.tensor(ends)[None, :]] = float("-inf")
    return logits


def _decode_answers(model, cache, mask, logits, gens, config, stops, pad_id, limits) -> list[tuple[list[int], bool]]:
    """Decode up to ``limits[r]`` tokens per row from (logits, cache); stop at a stop token. (ids, capped) per row."""
    answers: list[list[int]] = [[] for _ in gens]
    done, capped = [False] * len(gens), [False] * len(gens)
    while True:
        nxt = sample_next(logits, config, gens).tolist()
        for r, token in enumerate(nxt):
            if done[r]:
                continue
            if token in stops:
                done[r] = True
            else:
                answers[r].append(token)
                done[r] = capped[r] = len(answers[r]) >= limits[r]
        if all(done):
            break
        feed = torch.tensor([[t if not d else pad_id] for t, d in zip(nxt, done)], device=mask.device)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits, cache = _forward(model, feed, mask, cache)
    return list(zip(answers, capped))


def _branch(model, cache, mask, lengths, logits, rows_at, suffixes, seeds, budget, config, stops, pad_id):
    """Answers of rows ``rows_at`` capped at ``budget``: a copy of the cache + each row's forced end, then decode.

    Suffixes of different lengths (s1's newline is conditional) are left-padded with masked pad tokens."""
    device = mask.device
    branch_cache = copy.deepcopy(cache)
    branch_cache.batch_select_indices(torch.tensor(rows_at, device=device))
    branch_mask = mask[rows_at]
    branch_logits = logits[rows_at]
    width = max(len(s) for s in suffixes)
    if width:
        ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in suffixes], device=device)
        pad_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], dtype=mask.dtype,
                                device=device)
        branch_mask = torch.cat([branch_mask, pad_mask], dim=1)
        branch_logits, branch_cache = _forward(model, ids, branch_mask, branch_cache)
    gens = [_generator(answer_seed(seeds[r], budget), device) for r in rows_at]
    limits = [_answer_limit(model, config, int(lengths[r]) + budget + len(s)) for r, s in zip(rows_at, suffixes)]
    return _decode_answers(model, branch_cache, branch_mask, branch_logits, gens, config, stops, pad_id, limits)


@torch.no_grad()
def sweep_batch(model, tokenizer, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
                config: DecodingConfig, indices: list[int] | None = None) -> list[Generation]:
    """Budget-forced generation for one batch of rows (prompt, seed) at every budget, thinking shared."""
    budgets = check_budgets(budgets)
    device = next(model.parameters()).device
    stops = stop_token_ids(model, tokenizer)
    triggers = end_trigger_ids(tokenizer, fmt, stops)
    ends = sorted(triggers | stops)
    in_answer_stops = answer_stop_ids(tokenizer, fmt, stops)
    wait_ids = encode(tokenizer, wait_text(fmt))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(stops))
    indices = list(range(len(prompts))) if indices is None else indices

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    mask = batch["attention_mask"]
    logits, cache = _forward(model, batch["input_ids"], mask, None)
    rows = [_Row(_generator(seed, device)) for seed in seeds]
    lengths = mask.sum(-1).tolist()  # real prompt length per row
    branched: dict[tuple[int, int], tuple[list[int], bool, list[int]]] = {}
    step = 0  # thinking tokens generated and fed so far (every row advances together)
    while True:
        thinking_rows = [r for r, row in enumerate(rows) if row.state == THINK]
        if step in budgets and thinking_rows:
            suffixes = [forced_end_ids(tokenizer, fmt, rows[r].thinking) for r in thinking_rows]
            answers = _branch(model, cache, mask, lengths, logits, thinking_rows, suffixes, seeds, step, config,
                              in_answer_stops, pad_id)
            for r, suffix, (answer, capped) in zip(thinking_rows, suffixes, answers):
                branched[(r, step)] = (answer, capped, suffix)
        if step >= budgets[-1]:
            for r in thinking_rows:
                rows[r].state = DONE
        if all(row.state == DONE for row in rows):
            break
        sampled = sample_next(_suppress(logits, rows, config, ends), config, [row.generator for row in rows]).tolist()
        feed = []
        for r, (row, token) in enumerate(zip(rows, sampled)):
            if row.state == THINK:
                if row.forced:
                    token = row.forced.pop(0)
                elif token in triggers or token in stops:
                    if row.waits < config.waits:
                        row.wait_starts.append(len(row.thinking))
                        row.waits += 1  # s1 extension: drop the end of thinking, think on after "Wait"
                        row.forced = list(wait_ids)
                        token = row.forced.pop(0)
                        row.fresh = True
                    else:  # the model ends its thinking (or its turn)
                        row.natural_at = len(row.thinking)
                        follow = natural_end_ids(tokenizer, fmt, token, triggers)
                        row.state = DONE if follow is None else ANSWER
                        row.forced_end = follow or []
                        row.forced = list(follow or [])
                        row.limit = _answer_limit(model, config, int(lengths[r]) + len(row.thinking)
                                                  + len(row.forced))
                        token = row.forced.pop(0) if row.forced else token
                else:
                    row.fresh = False
                if row.natural_at is None:
                    row.thinking.append(token)
            elif row.state == ANSWER:
                if row.forced:
                    token = row.forced.pop(0)
                elif token in in_answer_stops:
                    row.state = DONE
                else:
                    row.answer.append(token)
                    if len(row.answer) >= row.limit:
                        row.state, row.answer_capped = DONE, True
            feed.append(token if row.state != DONE else pad_id)
        step += 1
        if all(row.state == DONE for row in rows):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits, cache = _forward(model, torch.tensor(feed, device=device)[:, None], mask, cache)

    results = []
    for r, row in enumerate(rows):
        for budget in budgets:
            natural = row.natural_at is not None and row.natural_at < budget
            if natural:
                think_ids, answer_ids, waits = row.thinking, row.answer, row.waits
                answer_capped, forced_ids = row.answer_capped, row.forced_end
            else:
                think_ids = row.thinking[:budget]
                answer_ids, answer_capped, forced_ids = branched[(r, budget)]
                waits = sum(start < budget for start in row.wait_starts)
            results.append(Generation(
                index=indices[r], seed=int(seeds[r]), budget=budget,
                thinking=tokenizer.decode(think_ids, skip_special_tokens=False),
                answer=tokenizer.decode(answer_ids, skip_special_tokens=True),
                thinking_tokens=len(think_ids), answer_tokens=len(answer_ids), capped=not natural, waits=waits,
                answer_capped=answer_capped, forced=tokenizer.decode(forced_ids, skip_special_tokens=False)))
    return results


def sweep(model, tokenizer, prompts: list[str], budgets, fmt: ThinkingFormat, config: DecodingConfig,
          seeds=(0,), show_progress: bool = True) -> list[Generation]:
    """Every prompt x seed at every budget, in batches of ``config.batch_size`` rows."""
    pairs = [(i, int(s)) for i in range(len(prompts)) for s in seeds]
    out: list[Generation] = []
    chunks = range(0, len(pairs), config.batch_size)
    for start in tqdm(chunks, desc="generate", disable=not show_progress):
        part = pairs[start:start + config.batch_size]
        out += sweep_batch(model, tokenizer, [prompts[i] for i, _ in part], [s for _, s in part], budgets, fmt,
                           config, indices=[i for i, _ in part])
    return out
