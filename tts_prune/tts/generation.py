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

import torch
from tqdm.auto import tqdm

from .attention import grouped_attention
from .formats import ThinkingFormat
from .protocol import (DEFAULT_ANSWER_TOKENS, DecodingConfig, FormatRules, Generation,  # noqa: F401  (re-exported)
                       answer_seed, assemble, check_budgets, forced_end_ids, harness_answer_limit, natural_end_ids,
                       stop_token_ids)
from .rows import RowBatch

THINK, ANSWER, DONE = 0, 1, 2  # row states in the decode loop
MIN_ROWS = 4  # forward calls never have fewer rows (see sweep_batch: batch-independent rounding)


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


class _Rules(FormatRules):
    """The protocol's rules for one model (its stops) plus what the lockstep loop needs: the pad id."""

    def __init__(self, model, tokenizer, fmt: ThinkingFormat, config: DecodingConfig):
        super().__init__(tokenizer, fmt, stop_token_ids(model, tokenizer), config)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stops)
        self.end_list = sorted(self.ends)  # the ids masked while the end of thinking is suppressed
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
                tokens = sample_next(_suppress(scores, drawn_rows, config, rules.end_list), config,
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

    answers = {branch.owner: (branch.answer, branch.answer_capped, branch.forced_end) for branch in branches}
    return [g for r, row in enumerate(rows) for g in assemble(
        tokenizer, indices[r], seeds[r], budgets, row.thinking, row.natural_at, row.wait_starts,
        {**{budget: answers[(r, budget)] for budget in budgets if (r, budget) in answers},
         None: (row.answer, row.answer_capped, row.forced_end)})]


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
