"""The toy reasoner: a few-million-parameter Qwen3ForCausalLM trained from scratch on ``toy_task``.

Reasoning models on the paper's scale (Qwen3-8B, s1.1-7B; study arXiv 2604.25098) cannot run on two
CPU cores, and the small instruct model the kit embeds cannot add, so its accuracy-vs-budget curves
are flat. This module trains, deterministically and in minutes, a model whose curves are real: it
writes a ``<think>`` scratchpad whose length grows with the problem, so accuracy rises with the
thinking budget (budget forcing as in s1, arXiv 2501.19393) and drops when pruning damages it.

Pieces: a character-level tokenizer (``tokenizers`` BPE with no merges, saved as a
PreTrainedTokenizerFast) with Qwen3's special tokens and a Qwen3-style chat template; a frozen
``ToyConfig``; ``train_toy_reasoner(target_dir, config)`` writing a complete HF model dir with a model
card; and ``budget_accuracy``, a small budget-forced greedy check (the evaluator replaces it in the study).
"""
from __future__ import annotations

import json
import math
import re
import string
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import toy_task
from .embedded import EMBEDDED

PAD, IM_START, IM_END, THINK, THINK_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END, THINK, THINK_END)
DEFAULT_BUDGETS = (8, 16, 32, 64, 128, 256)  # thinking tokens (= characters) after "<think>\n"
FORCED_CUT = "\n" + THINK_END + "\n\n"        # what budget forcing appends when the budget is hit

# Qwen3's layout: the assistant turn is "<think>\n{thinking}\n</think>\n\n{answer}".
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def assistant_text(thinking: str, answer: str) -> str:
    return f"{THINK}\n{thinking}\n{THINK_END}\n\n\\boxed{{{answer}}}"


# ------------------------------------------------------------------------------------ tokenizer
def build_tokenizer():
    """Character-level PreTrainedTokenizerFast: printable ASCII + newline, plus the special tokens."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))  # 95 printable + "\n"
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({c: len(SPECIAL_TOKENS) + i for i, c in enumerate(chars)})
    # A BPE with no merges splits every word into characters; with no pre-tokenizer spaces and
    # newlines are characters too, and Fuse() decodes by plain concatenation.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=IM_END, pad_token=PAD, bos_token=None,
        additional_special_tokens=[IM_START, THINK, THINK_END], clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 512
    return tokenizer


def render(tokenizer, problem: str, thinking: str | None = None, answer: str | None = None) -> str:
    """Chat text for a problem; with thinking and answer, the full training conversation."""
    messages = [{"role": "user", "content": problem}]
    if thinking is None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    messages.append({"role": "assistant", "content": assistant_text(thinking, answer)})
    return tokenizer.apply_chat_template(messages, tokenize=False)


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class ToyConfig:
    """Model shape and training recipe. ``tiny()`` is the seconds-long variant the tests train."""

    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    truncated_fraction: float = 0.25  # share of examples cut mid-thought then answered (forced-cut robustness)
    seed: int = 0
    threads: int = 2
    eval_problems: int = 200

    def __post_init__(self):
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "steps",
                     "batch_size", "threads", "eval_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"ToyConfig.{name}={getattr(self, name)} must be >= 1")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ToyConfig heads: hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}, "
                f"and num_heads by num_kv_heads={self.num_kv_heads}; pick e.g. 128/4/2"
            )
        if not 0.0 <= self.truncated_fraction < 1.0:
            raise ValueError(f"ToyConfig.truncated_fraction={self.truncated_fraction} must be in [0, 1)")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"ToyConfig.warmup={self.warmup} must be in [0, steps={self.steps})")

    @classmethod
    def tiny(cls) -> "ToyConfig":
        return cls(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, steps=30,
                   batch_size=8, lr=3e-3, warmup=3, threads=1, eval_problems=8)


def build_model(config: ToyConfig, tokenizer):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    model_config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, head_dim=config.hidden_size // config.num_heads,
        max_position_embeddings=tokenizer.model_max_length, rope_theta=10000.0, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    return Qwen3ForCausalLM(model_config)


# ------------------------------------------------------------------------------------ data
def _last_total(partial_thinking: str) -> str:
    """Best guess after a cut: the last complete running total (0 before the first full line)."""
    complete = partial_thinking.rsplit("\n", 1)[0] if "\n" in partial_thinking else ""
    totals = re.findall(r"=(\d+)", complete)
    return totals[-1] if totals else "0"


def training_example(tokenizer, problem: dict, cut: int | None) -> tuple[list[int], list[int]]:
    """Token ids and loss labels (-100 = no loss) for one problem.

    Loss is on the assistant turn only. With ``cut`` (a character count) the thinking is truncated
    there, ``FORCED_CUT`` follows and the answer is the last complete total: loss then falls on the
    answer only, so the model learns to answer after a forced cut but never to stop thinking early.
    """
    prompt = render(tokenizer, problem["problem"])
    if cut is None:
        head, tail = prompt, assistant_text(problem["thinking"], problem["answer"]) + IM_END
    else:
        thinking = problem["thinking"][:cut]
        head = prompt + THINK + "\n" + thinking + FORCED_CUT
        tail = f"\\boxed{{{_last_total(thinking)}}}" + IM_END
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    return head_ids + tail_ids, [-100] * len(head_ids) + tail_ids


def training_batch(tokenizer, problems: list[dict], rng: torch.Generator, truncated_fraction: float):
    """Right-padded (input_ids, labels, attention_mask), each (batch, longest)."""
    rows = []
    for problem in problems:
        truncate = torch.rand((), generator=rng).item() < truncated_fraction
        cut = int(torch.randint(0, len(problem["thinking"]), (), generator=rng)) if truncate else None
        rows.append(training_example(tokenizer, problem, cut))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(rows):
        ids[row, :len(row_ids)] = torch.tensor(row_ids)
        labels[row, :len(row_labels)] = torch.tensor(row_labels)
        mask[row, :len(row_ids)] = 1
    return ids, labels, mask


# ------------------------------------------------------------------------------------ training
def train(model, tokenizer, config: ToyConfig, show_progress: bool = True) -> list[float]:
    """AdamW with linear warmup and cosine decay on fresh train-split problems; returns per-step loss."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    problems = toy_task.make_problems(config.steps * config.batch_size, seed=config.seed, split="train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses = []
    bar = tqdm(range(config.steps), desc="train toy reasoner", disable=not show_progress)
    for step in bar:
        ids, labels, mask = training_batch(tokenizer, problems[step * config.batch_size:(step + 1) * config.batch_size], rng, config.truncated_fraction)
        ids, labels, mask = ids.to(model.device), labels.to(model.device), mask.to(model.device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


# ------------------------------------------------------------------------------------ budget check
_BOXED = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


ANSWER_TOKENS = EMBEDDED["toy-reasoner"].answer_tokens  # its card's answer budget, stated once (embedded.py)


def budget_generations(model, tokenizer, problems: list[dict], budgets=DEFAULT_BUDGETS, batch_size: int = 100,
                       show_progress: bool = True):
    """Budget-forced greedy generations through the evaluator's sweep (``tts_prune.tts.generation``) in the
    ``toy`` format: think up to B tokens after "<think>\\n"; if no "</think>" came, "\\n</think>\\n\\n" is
    appended; then the answer is generated. Returns the evaluator's ``Generation`` records."""
    from ..tts.formats import FORMATS, build_prompt
    from ..tts.generation import DecodingConfig, sweep

    fmt = FORMATS["toy"]
    prompts = [build_prompt(tokenizer, p["problem"], fmt) for p in problems]
    config = DecodingConfig(answer_tokens=ANSWER_TOKENS, batch_size=batch_size)
    return sweep(model, tokenizer, prompts, budgets, fmt, config, show_progress=show_progress)


def budget_correct(model, tokenizer, problems: list[dict], budgets=DEFAULT_BUDGETS,
                   show_progress: bool = True) -> dict[int, list[bool]]:
    """Per-problem correctness (parsed ``\\boxed{N}`` == answer) at each budget."""
    result = {int(b): [False] * len(problems) for b in budgets}
    for g in budget_generations(model, tokenizer, problems, budgets, show_progress=show_progress):
        found = _BOXED.search(g.answer)
        result[g.budget][g.index] = found is not None and int(found.group(1)) == int(problems[g.index]["answer"])
    return result


def budget_accuracy(model, tokenizer, problems: list[dict], budgets=DEFAULT_BUDGETS,
                    show_progress: bool = True) -> dict[int, float]:
    """Greedy accuracy at each thinking budget (fraction of problems answered correctly)."""
    correct = budget_correct(model, tokenizer, problems, budgets, show_progress)
    return {budget: sum(flags) / len(flags) for budget, flags in correct.items()}


# ------------------------------------------------------------------------------------ model dir
_CARD = """# toy-reasoner

**A small model trained on a synthetic task to make test-time scaling observable on a CPU. It is not a
general LLM**: it can only sum labelled digit lists (`Sum the digits: A7 B3 C9`) by writing a running-sum
scratchpad inside `<think> ... </think>` and answering `\\boxed{{N}}`.

- Architecture: `Qwen3ForCausalLM` (transformers), {params:,} parameters, character-level tokenizer
  ({vocab} tokens), Qwen3-style chat template with `<think>`.
- Trained from scratch by `tts_prune.models.toy.train_toy_reasoner` (tts-prune {version}) in {seconds:.0f} s on
  {threads} CPU thread(s); {truncated:.0%} of training examples have their thinking cut at a random point,
  followed by `</think>` and the last complete running total, so a forced cut yields a best guess.
- Training config: `{config}`
- Final training loss (mean of last 20 steps): {loss:.4f}

## Measured greedy accuracy on {n} held-out problems (test split), by thinking budget (tokens)

| budget | {budget_header} |
|---|{budget_rule}|
| accuracy | {budget_row} |

Budget forcing: up to B tokens after `<think>\\n`; if no `</think>` came, `\\n</think>\\n\\n` is appended
and the answer generated. The problems' thinking length is 5 to ~200 tokens (k = 1 to 26 items).
"""


def write_card(target: Path, model, tokenizer, config: ToyConfig, accuracy: dict[int, float], seconds: float,
               losses: list[float]) -> None:
    from .. import __version__

    tail = losses[-20:]
    (target / "README.md").write_text(_CARD.format(
        params=sum(p.numel() for p in model.parameters()), vocab=len(tokenizer), version=__version__,
        seconds=seconds, threads=config.threads, truncated=config.truncated_fraction,
        config=json.dumps(asdict(config)), loss=sum(tail) / len(tail), n=config.eval_problems,
        budget_header=" | ".join(str(b) for b in accuracy), budget_rule="|".join(["---"] * len(accuracy)),
        budget_row=" | ".join(f"{a:.3f}" for a in accuracy.values()),
    ))
    (target / "toy_training.json").write_text(json.dumps(
        {"config": asdict(config), "seconds": seconds, "losses": losses,
         "accuracy": {str(b): a for b, a in accuracy.items()}}, indent=1))


def train_toy_reasoner(target_dir, config: ToyConfig | None = None, show_progress: bool = True) -> Path:
    """Train the toy reasoner and write a complete HF model dir (weights, tokenizer, card) to ``target_dir``."""
    config = config or ToyConfig()
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # fixed thread count: part of the deterministic recipe
    try:
        tokenizer = build_tokenizer()
        torch.manual_seed(config.seed)
        model = build_model(config, tokenizer)
        start = time.perf_counter()
        losses = train(model, tokenizer, config, show_progress)
        seconds = time.perf_counter() - start
        held_out = toy_task.make_problems(config.eval_problems, seed=config.seed, split="test")
        accuracy = budget_accuracy(model, tokenizer, held_out, DEFAULT_BUDGETS, show_progress)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(target)
        write_card(target, model, tokenizer, config, accuracy, seconds, losses)
    finally:
        torch.set_num_threads(previous_threads)
    return target


def tiny_variant(**overrides) -> ToyConfig:
    """``ToyConfig.tiny()`` with overrides (for tests and quick experiments)."""
    return replace(ToyConfig.tiny(), **overrides)
