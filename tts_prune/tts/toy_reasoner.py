"""The toy reasoner's measured card and its budget-forced check: the evaluator run on ``tts_prune.models.toy``.

``models.toy`` builds and trains the model (tokenizer, config, data, training loop); what needs the
evaluator lives here, one floor up, so that no module of ``models`` imports ``tts``:

- ``budget_generations`` / ``budget_correct`` / ``budget_accuracy``: greedy, budget-forced generations in the
  ``toy`` thinking format through the evaluator's sweep (``generation.sweep``), graded by the toy task's own
  grader in the task registry (``benchmarks.BENCHMARKS["toy-reasoning"].grader``, the kit's numeric grader:
  the last ``\\boxed{}``, then the last number). The toy model boxes every answer, so this matches the
  ``\\boxed{N}`` regex the trainer used before (a response with no box but a final number now counts
  that number, as the study's grading of the same task always did).
- ``train_toy_reasoner(target_dir, config)``: trains (``models.toy.train``), measures accuracy by budget on
  held-out test-split problems and writes a complete HF model directory with its card.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..models import toy_task
from ..models.embedded import EMBEDDED
from ..models.toy import DEFAULT_BUDGETS, ToyConfig, build_model, build_tokenizer, train

ANSWER_TOKENS = EMBEDDED["toy-reasoner"].answer_tokens  # its card's answer budget, stated once (models/embedded.py)
TASK = "toy-reasoning"  # the task registry's name for the toy task (its grader kind grades the check)


def budget_generations(model, tokenizer, problems: list[dict], budgets=DEFAULT_BUDGETS, batch_size: int = 100,
                       show_progress: bool = True):
    """Budget-forced greedy generations through the evaluator's sweep (``tts_prune.tts.generation``) in the
    ``toy`` format: think up to B tokens after "<think>\\n"; if no "</think>" came, "\\n</think>\\n\\n" is
    appended; then the answer is generated. Returns the evaluator's ``Generation`` records."""
    from .formats import FORMATS, build_prompt
    from .generation import DecodingConfig, sweep

    fmt = FORMATS["toy"]
    prompts = [build_prompt(tokenizer, p["problem"], fmt) for p in problems]
    config = DecodingConfig(answer_tokens=ANSWER_TOKENS, batch_size=batch_size)
    return sweep(model, tokenizer, prompts, budgets, fmt, config, show_progress=show_progress)


def budget_correct(model, tokenizer, problems: list[dict], budgets=DEFAULT_BUDGETS,
                   show_progress: bool = True) -> dict[int, list[bool]]:
    """Per-problem correctness at each budget, by the toy task's grader (the answer after the thinking)."""
    from .benchmarks import BENCHMARKS
    from .grading import grade_answer

    kind = BENCHMARKS[TASK].grader
    result = {int(b): [False] * len(problems) for b in budgets}
    for g in budget_generations(model, tokenizer, problems, budgets, show_progress=show_progress):
        result[g.budget][g.index] = grade_answer(kind, g.answer, str(problems[g.index]["answer"])).correct
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
- Trained from scratch by `tts_prune.tts.toy_reasoner.train_toy_reasoner` (tts-prune {version}) in {seconds:.0f} s on
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
