"""The ``s1-harness`` grading protocol: the rules of the harness arXiv 2604.25098 graded with.

Read from the authors' copy of s1's lm-evaluation-harness fork (``OCM-7898/TTS-Pruning``,
``Modified-Layer-Pruning-Harms-Inference-Scaling/eval/lm-evaluation-harness/lm_eval/tasks/``
``openai_math/utils.py``, ``amc23/utils.py``, ``gpqa/openai/utils.py``; ``aime24_nofigures`` is s1's
``tasks/aime/utils.py``) and re-implemented here (no code copied). For one response:

1. **Split.** If the text holds ``<|im_start|>answer\\n``, keep what follows its last occurrence; else, if it
   holds ``<|im_start|>``, keep what follows the last one minus its first line; else keep it whole. The
   text is the *whole* response (thinking + forced text + answer): a Qwen3 record (``<think>`` delimiters)
   has neither token and is graded whole, thinking included. (Their own vLLM wrapper prepends s1's
   ``<|im_start|>think`` and forces ``<|im_start|>answer`` on every model, Qwen3 included, so their Qwen3
   texts do carry the tokens; ours, with Qwen3's real delimiters, do not.)
2. **Extract.** The last ``\\boxed`` (their ``last_boxed_only_string`` + the authors' ``remove_boxed`` of
   ``openai_math`` and ``gpqa``, quirks kept: a ``\\boxed `` with a space anywhere wins, read up to the next
   ``$``; an ``\\fbox{...}`` gives ""; s1's AIME copy would crash on it and the AMC copy cuts 7 characters); else
   the regex ``(?i)Answer\\s*:\\s*(.*)`` with ``re.DOTALL``, ``findall(...)[-1]``. Because ``.*`` with DOTALL
   runs to the end of the text, there is only ever one match: everything after the FIRST "Answer:".
3. **Math** (MATH500, AIME, AMC, and here GSM8K-style numbers too): the gold is ``str(int(gold))`` when it
   is all digits. If the extraction and the gold are both digit strings, they are compared as integers.
   Otherwise the judge gets the options list ``[gold]`` (their ``[gt] + earlier extracted answers`` of the
   same problem: one sample per lm-eval run, so just the gold) and the attempt; a reply that is a digit
   string ``k`` in range replaces the attempt by option k. Correct iff the result equals the gold string.
4. **GPQA**: a lower-case a-d is upper-cased; anything else that is not A-D goes to the judge with the
   question and its choices (their ``QUERY_TEMPLATE_API``); a reply that is not exactly A-D is
   ``INVALID`` and scores wrong (s1's original defaulted to "A"; the authors changed that, as do we).

Without a judge (offline): where the harness would ask the judge, the kit's own grader for the benchmark
(math-verify for math, numbers for numeric, anchored letters for choice) reads the SPLIT text of step 1,
cue and box included, and its verdict stands in for the judge's. Every grade says which route decided it
(``Grade.route``): ``integer``, ``exact``, ``judge``, ``fallback-math-verify``, ``fallback-numeric``,
``fallback-letter``, ``letter``, ``invalid``. The harness itself, without its ``PROCESSOR`` variable,
raises for MATH, compares strings for AIME/AMC and scores INVALID for GPQA.
"""
from __future__ import annotations

import re

from .judge import JudgeConfig, judge_prompts

ANSWER_TOKEN, TURN_TOKEN = "<|im_start|>answer\n", "<|im_start|>"
ANSWER_PATTERN = re.compile(r"(?i)Answer\s*:\s*(.*)", re.DOTALL)
LETTERS = ("A", "B", "C", "D")
INVALID = "INVALID"
# Which judge prompt each benchmark's harness task uses (judge_prompts.json); others use openai_math's.
JUDGE_PROMPT = {"aime24": "aime", "amc23": "amc"}
FALLBACK_ROUTE = {"math": "fallback-math-verify", "numeric": "fallback-numeric", "choice": "fallback-letter"}


def harness_split(text: str) -> str:
    """Step 1: the part of a whole response their rules read."""
    if ANSWER_TOKEN in text:
        return text.split(ANSWER_TOKEN)[-1]
    if TURN_TOKEN in text:
        tail = text.split(TURN_TOKEN)[-1]
        return "\n".join(tail.split("\n")[1:]) if "\n" in tail else tail
    return text


def last_boxed_only(text: str) -> str | None:
    """Their ``last_boxed_only_string``: ``\\boxed ...`` (space form) first, else the last ``\\boxed``/``\\fbox`` group."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def remove_boxed(boxed: str) -> str:
    """Their (authors' modified) ``remove_boxed``: the content, or "" when the form is not ``\\boxed{...}``."""
    if "\\boxed " in boxed:
        return boxed[len("\\boxed "):] if boxed.startswith("\\boxed ") else ""
    if not boxed.startswith("\\boxed{") or not boxed.endswith("}"):
        return ""
    return boxed[len("\\boxed{"):-1]


def harness_extract(split: str) -> tuple[str, bool]:
    """Step 2 on the split text: (the boxed content, else everything after the first "Answer:", else the
    text itself; whether a box or an "Answer:" stated it)."""
    boxed = last_boxed_only(split)
    if boxed is not None:
        return remove_boxed(boxed), True
    matches = ANSWER_PATTERN.findall(split)
    return (matches[-1], True) if matches else (split, False)


def int_string(text: str) -> str | None:
    # str.isdigit() as theirs, but int() refuses some isdigit() characters ("²"): those are not integers here.
    if not text.isdigit():
        return None
    try:
        return str(int(text))
    except ValueError:
        return None


def gold_string(gold) -> str:
    """Their ``gt``: ``str(int(answer))`` for an all-digit answer ("023" -> "23"), else ``str(answer)``."""
    text = str(gold)
    return int_string(text) or text


def judge_math(judge: JudgeConfig, benchmark: str, gold: str, attempt: str) -> str:
    """Ask which option ``attempt`` matches; the option (the gold) when the reply names it, else ``attempt``."""
    options = [gold]
    options_text = "[" + ", ".join("'" + str(o) + "'" for o in options) + "]"
    template = judge_prompts()[JUDGE_PROMPT.get(benchmark.partition("@")[0], "math")]["template"]
    reply = judge.ask(template % {"expression1": options_text, "expression2": attempt})
    if reply != "-1" and reply.isdigit() and 0 <= int(reply) - 1 < len(options):
        return options[int(reply) - 1]
    return attempt


def judge_question(problem: dict) -> str:
    """The GPQA question as their judge reads it (``QUERY_TEMPLATE_API``), from ``question`` and ``choices``."""
    choices = problem.get("choices") or []
    if "question" not in problem or len(choices) != 4:
        raise ValueError(f"problem {problem.get('id')!r} has no 'question' and four 'choices'; the s1-harness GPQA "
                         "judge needs both (load GPQA through tts_prune.tts.benchmarks)")
    template = judge_prompts()["gpqa_question"]["template"]
    return template.format(Question=problem["question"], **{f"choice{k + 1}": c for k, c in enumerate(choices)})


def judge_letter(judge: JudgeConfig, question: str, attempt: str) -> str:
    return judge.ask(judge_prompts()["gpqa"]["template"] % {"expression1": question, "expression2": attempt})
