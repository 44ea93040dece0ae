"""The transformers backend: batched budget-forced generation with an incremental budget sweep.

For budgets B1 < ... < Bk the thinking trace is generated ONCE, up to Bk tokens, and the answer is
branched off at every Bi (s1's budget forcing, arXiv 2501.19393): the row is forked (its KV cache rows
copied, ``tts_prune.tts.rows``), the fork is fed the format's forced end (s1:
``[\\n]<|im_start|>answer\\nFinal Answer:``) and decodes the answer with its own budget (``answer_tokens``,
thousands by default, or until a stop token) while the thinking rows go on in the same batch. A row that
ends its thinking by itself after t tokens goes on into its own answer (in the s1 format after the forced
``<|im_start|>answer``, as s1 does); its record is the same "natural stop" record at every budget B > t,
exactly what a separate run at B would produce. Rows advance in lockstep, one token per step, so all rows
share one column count; rows that finish leave the batch.

Extension mode and minimum thinking follow s1's ``vllm_causallms.py``: an attempt to end the thinking
(the end delimiter's first token or an end-of-turn token) is dropped and the exact text "Wait" is fed
instead, after which at least one token is generated before the thinking may end again (vLLM's
``min_tokens=1``); ``min_thinking`` suppresses every end of thinking until that many thinking tokens.

Sampling draws every row from its own ``torch.Generator`` (seeded by the sample seed for thinking and
by (seed, budget) for a branched answer), so a row's tokens do not depend on its batch neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .attention import grouped_attention
from .formats import ThinkingFormat, cap_prefix, wait_text
from .rows import RowBatch

THINK, ANSWER, DONE = 0, 1, 2  # row states in the decode loop
MIN_ROWS = 4  # forward calls never have fewer rows (see sweep_batch: batch-independent rounding)
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


def _answer_limit(model, config: DecodingConfig, used: int) -> int:
    """The answer budget; ``None`` (until a stop token) is what the context leaves after ``used`` tokens
    (vLLM's ``max_tokens=None``: up to ``max_model_len``)."""
    context = int(getattr(model.config, "max_position_embeddings", None) or 32768)
    limit = harness_answer_limit(config, used, context)
    return limit if limit is not None else max(1, context - used)


class _Row:
    """Mutable state of one row of the decode loop: a thinking trace, or an answer branched off one."""

    def __init__(self, generator, state: int = THINK, owner: tuple[int, int] | None = None):
        self.state = state
        self.generator = generator
        self.owner = owner            # (prompt row, budget) of a branched answer; None for a thinking row
        self.thinking: list[int] = []
        self.answer: list[int] = []
        self.forced: list[int] = []   # tokens to emit instead of sampling ("Wait", a forced end of thinking)
        self.forced_end: list[int] = []  # what was forced between thinking and answer
        self.fresh = True             # no token sampled since the start or the last "Wait" (s1: min_tokens=1)
        self.waits = 0
        self.wait_starts: list[int] = []  # thinking positions where a forced "Wait" begins
        self.natural_at: int | None = None  # thinking length when the model ended thinking by itself
        self.answer_capped = False
        self.limit = 0                # the answer budget once the row is answering
        self.prompt_length = 0        # real (unpadded) prompt tokens


def _suppress(logits: torch.Tensor, rows: list[_Row], config: DecodingConfig, ends: list[int]) -> torch.Tensor:
    """Mask the end of thinking for rows below ``min_thinking`` or right after a "Wait" (vLLM's min_tokens)."""
    blocked = [r for r, row in enumerate(rows) if row.state == THINK and not row.forced and (
        len(row.thinking) < config.min_thinking or (config.waits > 0 and row.fresh))]
    if not blocked or not ends:
        return logits
    logits = logits.clone()
    logits[torch.tensor(blocked)[:, None], torch.tensor(ends)[None, :]] = float("-inf")
    return logits


class _Rules:
    """What the loop needs to know about the tokenizer and format: stops, triggers, forced texts, limits."""

    def __init__(self, model, tokenizer, fmt: ThinkingFormat, config: DecodingConfig):
        self.tokenizer, self.fmt, self.config = tokenizer, fmt, config
        self.stops = stop_token_ids(model, tokenizer)
        self.triggers = end_trigger_ids(tokenizer, fmt, self.stops)
        self.ends = sorted(self.triggers | self.stops)
        self.answer_stops = answer_stops_for(tokenizer, fmt, self.stops, config)
        self.wait_ids = encode(tokenizer, wait_text(fmt))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stops)
        self.model = model

    def advance(self, row: _Row, token: int | None) -> int:
        """Apply the sampled ``token`` (None: not drawn, the row has forced tokens) to ``row``; the token to feed
        (forced, or ``pad_id`` once the row is done)."""
        if row.state == THINK:
            if row.forced:
                token = row.forced.pop(0)
            elif token in self.triggers or token in self.stops:
                if row.waits < self.config.waits:
                    row.wait_starts.append(len(row.thinking))
                    row.waits += 1  # s1 extension: drop the end of thinking, think on after "Wait"
                    row.forced = list(self.wait_ids)
                    token = row.forced.pop(0)
                    row.fresh = True
                else:  # the model ends its thinking (or its turn)
                    row.natural_at = len(row.thinking)
                    follow = natural_end_ids(self.tokenizer, self.fmt, token, self.triggers)
                    row.state = DONE if follow is None else ANSWER
                    row.forced_end = follow or []
                    row.forced = list(follow or [])
                    row.limit = _answer_limit(self.model, self.config, row.prompt_length + len(row.thinking)
                                              + len(row.forced))
                    token = row.forced.pop(0) if row.forced else token
            else:
                row.fresh = False
            if row.natural_at is None:
                row.thinking.append(token)
        elif row.state == ANSWER:
            if row.forced:
                token = row.forced.pop(0)
            elif token in self.answer_stops:
                row.state = DONE
            else:
                row.answer.append(token)
                if len(row.answer) >= row.limit:
                    row.state, row.answer_capped = DONE, True
        return token if row.state != DONE else self.pad_id


def _tokenize_left(tokenizer, prompts: list[str], device):
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        return tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side


@torch.no_grad()
def sweep_batch(model, tokenizer, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
                config: DecodingConfig, indices: list[int] | None = None) -> list[Generation]:
    """Budget-forced generation for one batch of rows (prompt, seed) at every budget, thinking shared.

    All rows, thinking and answering, run in one lockstep batch (``RowBatch``): at a budget every row
    still thinking is forked into an answer row whose next tokens are the forced end of thinking, and
    rows leave the batch when they finish. The batch never has fewer than ``MIN_ROWS`` rows (finished
    rows stay as ballast): CPU matmul kernels round a row the same way for any row count from 4 up, but
    not below, so a row's logits do not depend on how many other rows share its batch (checked by
    ``tests/tts/test_rows.py``), and a sweep equals separate runs at each budget. Memory: the KV cache holds
    (rows thinking + answers still decoding) x the longest row's columns; the previous loop held at most
    twice the thinking rows' cache (one deep copy at a time). Answers that run longer than the gap between
    budgets therefore overlap and raise the peak: lower ``batch_size`` when that does not fit.
    """
    budgets = check_budgets(budgets)
    device = next(model.parameters()).device
    rules = _Rules(model, tokenizer, fmt, config)
    indices = list(range(len(prompts))) if indices is None else indices
    n = len(prompts)
    ballast = max(0, MIN_ROWS - n)
    batch = _tokenize_left(tokenizer, list(prompts) + [prompts[-1]] * ballast, device)
    rows = [_Row(_generator(seed, device)) for seed in seeds]
    for row, length in zip(rows, batch["attention_mask"].sum(-1).tolist()):
        row.prompt_length = length
    slots = rows + [_Row(None, state=DONE) for _ in range(ballast)]  # the row in each batch position
    branches: list[_Row] = []
    columns = batch["input_ids"].shape[1] + budgets[-1] + min(config.answer_tokens or 256, 256) + 8
    with grouped_attention(model):
        lockstep = RowBatch(model, columns_hint=columns)
        logits = lockstep.prefill(batch["input_ids"], batch["attention_mask"])
        step = 0  # thinking tokens generated and fed so far (every thinking row advances together)
        while True:
            thinking = [i for i, row in enumerate(slots) if row.state == THINK]
            if step in budgets and thinking:
                lockstep.fork(thinking)
                logits = torch.cat([logits, logits[thinking]])
                for i in thinking:
                    parent = rows.index(slots[i])
                    branch = _Row(_generator(answer_seed(seeds[parent], step), device), ANSWER, (parent, step))
                    branch.forced_end = forced_end_ids(tokenizer, fmt, slots[i].thinking)
                    branch.forced = list(branch.forced_end)
                    branch.prompt_length = rows[parent].prompt_length
                    branch.limit = _answer_limit(model, config, branch.prompt_length + step + len(branch.forced_end))
                    slots.append(branch)
                    branches.append(branch)
            if step >= budgets[-1]:
                for i in thinking:
                    slots[i].state = DONE
            live = [i for i, row in enumerate(slots) if row.state != DONE]
            if not live:
                break
            # Thinking rows draw at every step (also while "Wait" is forced); a branched answer draws once its
            # forced end has been fed (as the loop did before answers joined the batch: sampled records are unchanged).
            drawn = [i for i in live if not (slots[i].owner is not None and slots[i].forced)]
            sampled = {}
            if drawn:
                drawn_rows = [slots[i] for i in drawn]
                scores = logits if len(drawn) == len(slots) else logits[drawn]  # (rows drawn, vocab)
                tokens = sample_next(_suppress(scores, drawn_rows, config, rules.ends), config,
                                     [row.generator for row in drawn_rows])
                sampled = dict(zip(drawn, tokens.tolist()))
            feed = [rules.pad_id] * len(slots)
            for i in live:
                feed[i] = rules.advance(slots[i], sampled.get(i))
            if all(slots[i].state == DONE for i in live):
                break
            keep = [i for i, row in enumerate(slots) if row.state != DONE]
            if len(keep) < len(slots) and len(slots) > MIN_ROWS:  # finished rows leave the batch
                keep += [i for i, row in enumerate(slots) if row.state == DONE][:max(0, MIN_ROWS - len(keep))]
                keep.sort()
                lockstep.keep(keep)
                slots, feed = [slots[i] for i in keep], [feed[i] for i in keep]
            logits = lockstep.step(torch.tensor(feed, device=device))
            step += 1

    branched = {branch.owner: branch for branch in branches}
    results = []
    for r, row in enumerate(rows):
        for budget in budgets:
            natural = row.natural_at is not None and row.natural_at < budget
            if natural:
                think_ids, answer_ids, waits = row.thinking, row.answer, row.waits
                answer_capped, forced_ids = row.answer_capped, row.forced_end
            else:
                think_ids = row.thinking[:budget]
                branch = branched[(r, budget)]
                answer_ids, answer_capped, forced_ids = branch.answer, branch.answer_capped, branch.forced_end
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
