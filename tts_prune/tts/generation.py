"""The transformers backend: batched budget-forced generation with an incremental budget sweep.

For budgets B1 < ... < Bk the thinking trace is generated ONCE, up to Bk tokens, and the answer is
branched off at every Bi from a copy of the KV cache at that point (s1's budget forcing, arXiv
2501.19393): the end-of-thinking delimiter and the answer cue are appended and a short answer is
decoded. A row that ends its thinking by itself after t tokens keeps going into its own answer; its
record is the same "natural stop" record at every budget B > t, exactly what a separate run at B
would produce. Rows advance in lockstep, one token per step, so for all rows the cache column of
thinking token j is P + j (P: left-padded prompt length) and one snapshot per budget serves the batch.

Sampling draws every row from its own ``torch.Generator`` (seeded by the sample seed for thinking and
by (seed, budget) for a branched answer), so a row's tokens do not depend on its batch neighbours.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .formats import ThinkingFormat, forced_end, wait_text

THINK, ANSWER, DONE = 0, 1, 2  # row states in the decode loop


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding parameters. ``temperature == 0`` is greedy; ``waits`` > 0 is s1's extension mode."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    answer_tokens: int = 64   # the answer's own small budget, after the forced or natural end of thinking
    waits: int = 0            # suppress the end of thinking and append "Wait" up to this many times
    batch_size: int = 8

    def __post_init__(self) -> None:
        checks = [
            (self.temperature >= 0, f"temperature={self.temperature} must be >= 0 (0 is greedy)"),
            (0 < self.top_p <= 1, f"top_p={self.top_p} must be in (0, 1]"),
            (self.top_k >= 0, f"top_k={self.top_k} must be >= 0 (0 disables top-k)"),
            (self.answer_tokens >= 1, f"answer_tokens={self.answer_tokens} must be >= 1; 32-128 is usual"),
            (self.waits >= 0, f"waits={self.waits} must be >= 0 (0 disables the extension mode)"),
            (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DecodingConfig: {message}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


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


def check_budgets(budgets) -> tuple[int, ...]:
    """Budgets as a strictly increasing tuple of positive ints."""
    values = tuple(int(b) for b in budgets)
    if not values or any(b < 1 for b in values) or len(set(values)) != len(values):
        raise ValueError(f"budgets {list(budgets)} must be distinct positive token counts, e.g. 512,1024,2048")
    return tuple(sorted(values))


def stop_token_ids(model, tokenizer) -> set[int]:
    """EOS ids from the tokenizer and generation config, plus ``<|im_end|>`` (chat turn end) if present."""
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
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


def _forward(model, ids: torch.Tensor, mask: torch.Tensor, cache):
    # Left padding: positions count real tokens only, so each row sees the positions of an unpadded run.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    return out.logits[:, -1, :], out.past_key_values


class _Row:
    """Mutable per-row state of the decode loop."""

    def __init__(self, generator):
        self.state = THINK
        self.generator = generator
        self.thinking: list[int] = []
        self.answer: list[int] = []
        self.forced: list[int] = []   # tokens to emit instead of sampling ("Wait")
        self.waits = 0
        self.wait_starts: list[int] = []  # thinking positions where a forced "Wait" begins
        self.natural_at: int | None = None  # thinking length when the model ended thinking by itself


def _decode_answers(model, cache, mask, logits, rows_gen, config, stops, pad_id) -> list[list[int]]:
    """Decode up to ``answer_tokens`` per row from (logits, cache); stop at a stop token."""
    answers: list[list[int]] = [[] for _ in rows_gen]
    done = [False] * len(rows_gen)
    for _ in range(config.answer_tokens):
        nxt = sample_next(logits, config, rows_gen).tolist()
        for r, token in enumerate(nxt):
            if done[r]:
                continue
            if token in stops:
                done[r] = True
            else:
                answers[r].append(token)
                done[r] = len(answers[r]) >= config.answer_tokens
        if all(done):
            break
        feed = torch.tensor([[t if not d else pad_id] for t, d in zip(nxt, done)], device=mask.device)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits, cache = _forward(model, feed, mask, cache)
    return answers


@torch.no_grad()
def sweep_batch(model, tokenizer, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
                config: DecodingConfig, indices: list[int] | None = None) -> list[Generation]:
    """Budget-forced generation for one batch of rows (prompt, seed) at every budget, thinking shared."""
    budgets = check_budgets(budgets)
    device = next(model.parameters()).device
    stops = stop_token_ids(model, tokenizer)
    triggers = end_trigger_ids(tokenizer, fmt, stops)
    suffix = encode(tokenizer, forced_end(fmt))
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
    branched: dict[tuple[int, int], list[int]] = {}
    step = 0  # thinking tokens generated and fed so far (every row advances together)
    while True:
        thinking_rows = [r for r, row in enumerate(rows) if row.state == THINK]
        if step in budgets and thinking_rows:
            # Branch: a copy of the cache at P + step, only the rows still thinking, + delimiter and cue.
            branch_cache = copy.deepcopy(cache)
            branch_cache.batch_select_indices(torch.tensor(thinking_rows, device=device))
            branch_mask = torch.cat([mask[thinking_rows], torch.ones(len(thinking_rows), len(suffix),
                                     dtype=mask.dtype, device=device)], dim=1)
            ids = torch.tensor([suffix] * len(thinking_rows), device=device)
            branch_logits, branch_cache = _forward(model, ids, branch_mask, branch_cache)
            gens = [_generator(seeds[r] * 1_000_003 + step, device) for r in thinking_rows]
            answers = _decode_answers(model, branch_cache, branch_mask, branch_logits, gens, config, stops, pad_id)
            for r, answer in zip(thinking_rows, answers):
                branched[(r, step)] = answer
        if step >= budgets[-1]:
            for r in thinking_rows:
                rows[r].state = DONE
        if all(row.state == DONE for row in rows):
            break
        sampled = sample_next(logits, config, [row.generator for row in rows]).tolist()
        feed = []
        for row, token in zip(rows, sampled):
            if row.state == THINK:
                if row.forced:
                    token = row.forced.pop(0)
                elif token in triggers and row.waits < config.waits:
                    row.wait_starts.append(len(row.thinking))
                    row.waits += 1  # s1 extension: suppress the end of thinking, think on after "Wait"
                    row.forced = list(wait_ids)
                    token = row.forced.pop(0)
                elif token in triggers or token in stops:  # the model ends its thinking (or its turn)
                    row.natural_at = len(row.thinking)
                    row.state = DONE if token in stops else ANSWER
                if row.natural_at is None:
                    row.thinking.append(token)
            elif row.state == ANSWER:
                if token in stops:
                    row.state = DONE
                else:
                    row.answer.append(token)
                    if len(row.answer) >= config.answer_tokens:
                        row.state = DONE
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
            else:
                think_ids, answer_ids = row.thinking[:budget], branched[(r, budget)]
                waits = sum(start < budget for start in row.wait_starts)
            results.append(Generation(
                index=indices[r], seed=int(seeds[r]), budget=budget,
                thinking=tokenizer.decode(think_ids, skip_special_tokens=False),
                answer=tokenizer.decode(answer_ids, skip_special_tokens=True),
                thinking_tokens=len(think_ids), answer_tokens=len(answer_ids), capped=not natural, waits=waits))
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
