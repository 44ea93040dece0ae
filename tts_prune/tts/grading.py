"""Grading: math with math-verify under a real time limit, GSM8K-style numbers, anchored option letters.

``grade_answer(kind, response, gold, protocol=...)`` returns a ``Grade`` (correct, prediction, no_answer,
timeout, route); ``answers_equivalent(kind, a, b)`` says whether two extracted answers mean the same (maj@k).

Two grading protocols (``PROTOCOLS``): ``kit`` (below: the answer part, read by math-verify, numbers or
anchored letters) and ``s1-harness`` (the rules of the harness arXiv 2604.25098 graded with, an LLM judge
where they ask one; ``tts_prune.tts.harness``). The kit's rules:

Math (MATH500, AIME; the protocol of s1, arXiv 2501.19393, and DeepSeek-R1, arXiv 2501.12948): the answer
is extracted by math-verify's own extractors, ``parse(response, [LatexExtractionConfig(
boxed_match_priority=0), ExprExtractionConfig()], extraction_mode="first_match")``, i.e. in this order:

1. ``\\boxed{...}`` (the last one; several boxes in one match are read together as a set),
2. the last answer cue: "final answer is X" (priority 50), "answer: X" (100), "answer ... X" (200),
3. the last LaTeX span or plain number/expression in the text (300),

where within one priority the match that ends last wins, and ``first_match`` means the first match found
is THE answer even if sympy cannot parse it (then its text is compared as a string); no lower-priority
match is tried instead. The gold answer is parsed as ``$gold$`` (LaTeX, then plain expression), and the
two are compared with ``math_verify.verify(gold, prediction)``. Differences from the defaults:
math-verify's ``parse`` puts boxed answers at priority 50 (after "final answer is"), lighteval's math
tasks at 55 and use ``any_match`` (fall through to later matches when one fails to parse); s1's own
scorer (its lm-evaluation-harness fork, ``tasks/openai_math/utils.py``) takes the last ``\\boxed{}``, else
the text after the last "Answer:", compares digit strings exactly and asks gpt-4o-mini whether anything
else matches the gold (math-verify is the offline stand-in for that judge). Here the box comes first
because every model in the study is prompted to box its answer, and a failed parse of the stated answer
never turns into credit for some other number in the text.

math-verify's own timeouts (SIGALRM) only work in the main thread and cannot stop C-level work, so both
its timeouts are disabled and the whole ``parse`` + ``verify`` runs in a persistent worker process
(``sandbox``) that is killed and replaced when ``timeout_s`` passes; the grade then has ``timeout=True``
and ``correct=False``. Numbers and letters are plain regex scans in this process (see ``extract``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .extract import (CUES, after_cue, extract_answer, extract_letter, extract_number, last_boxed,  # noqa: F401
                      parse_number, tidy_math_response)
from .harness import (FALLBACK_ROUTE, INVALID, LETTERS, gold_string, harness_extract, harness_split, int_string,
                      judge_letter, judge_math)
from .judge import JudgeConfig
from .sandbox import GradingTimeout, default_worker

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Grade:
    """One graded response. ``timeout`` grades are neither right nor "no answer": report them apart."""

    correct: bool
    prediction: str | None   # the extracted answer (letter for choice), None when nothing extractable
    no_answer: bool          # nothing extractable from the response
    timeout: bool            # grading hit the time limit (then correct=False)
    route: str = "kit"       # what decided: "kit", or an s1-harness route (integer, judge, fallback-..., letter)


# --------------------------------------------------------------------------- math (runs in the worker)

def _quiet() -> None:
    # Its timeouts are off on purpose (the worker is killed instead); drop the warning saying so.
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _pred_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def _parse_gold(gold: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    gold = str(gold).strip()
    return parse(f"${gold}$", configs, parsing_timeout=None) or parse(gold, configs, parsing_timeout=None)


def _parse_prediction(response: str):
    from math_verify import parse

    return parse(response, _pred_config(), extraction_mode="first_match", parsing_timeout=None)


def _math_in_worker(response: str, gold: str) -> tuple[bool, bool, bool, str | None]:
    """(gold parsed?, correct, anything extracted?, extracted text). Only plain values cross the pipe:
    printing some parsed expressions (huge powers) never returns, so sympy objects stay in the worker."""
    from math_verify import verify

    _quiet()
    expected = _parse_gold(gold)
    predicted = _parse_prediction(response)
    text = next((p for p in reversed(predicted) if isinstance(p, str)), None)
    correct = bool(expected) and bool(predicted) and bool(verify(expected, predicted, timeout_seconds=None))
    return bool(expected), correct, bool(predicted), text


def _math_equivalent_in_worker(a: str, b: str) -> bool:
    from math_verify import verify

    _quiet()
    first, second = _parse_gold(a), _parse_gold(b)
    return bool(first) and bool(second) and bool(verify(first, second, timeout_seconds=None))


def _grade_math(response: str, gold: str, timeout_s: float, options: int | None = None) -> Grade:
    response = tidy_math_response(response)  # approximations, bold, choice labels, "3 and 5" (see extract)
    try:
        gold_ok, correct, found, text = default_worker().call(__name__, "_math_in_worker", (response, str(gold)),
                                                              timeout_s)
    except GradingTimeout:
        return Grade(correct=False, prediction=None, no_answer=False, timeout=True)
    if not gold_ok:
        raise ValueError(f"gold answer {gold!r} is not something math-verify can parse; write it as LaTeX "
                         f"(e.g. '\\frac{{1}}{{2}}', '(-\\infty, 3]', '\\text{{Monday}}')")
    return Grade(correct=correct, prediction=text, no_answer=not found, timeout=False)


# --------------------------------------------------------------------------- numbers and letters

def _grade_numeric(response: str, gold: str, timeout_s: float, options: int | None = None) -> Grade:
    expected = parse_number(gold)
    if expected is None:
        raise ValueError(f"gold answer {gold!r} is not a number; numeric grading needs e.g. '42' or '#### 42'")
    found = extract_number(response)
    if found is None:
        return Grade(correct=False, prediction=None, no_answer=True, timeout=False)
    return Grade(correct=parse_number(found) == expected, prediction=found, no_answer=False, timeout=False)


def gold_letter(gold: str) -> str:
    """``"(C)"``, ``"c"``, ``" C "`` -> ``"C"``; a ValueError naming ``gold`` for anything else."""
    letter = str(gold).strip().strip("()").strip().upper()
    if not re.fullmatch(r"[A-Z]", letter):
        raise ValueError(f"gold answer {gold!r} is not an option letter; multiple choice needs 'A'..'Z'")
    return letter


def option_letters(gold: str, options: int | None = None) -> str:
    """The letters a response may choose: the first ``options`` letters, else A..D extended to the gold."""
    if options is not None:
        if not 2 <= int(options) <= 26:
            raise ValueError(f"options={options!r} must be the number of choices, 2..26")
        return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:int(options)]
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:max(4, ord(gold_letter(gold)) - ord("A") + 1)]


def _grade_choice(response: str, gold: str, timeout_s: float, options: int | None = None) -> Grade:
    expected = gold_letter(gold)
    found = extract_letter(response, option_letters(gold, options))
    return Grade(correct=found == expected, prediction=found, no_answer=found is None, timeout=False)


# Every grader: (response, gold, timeout_s, options) -> Grade; ``options`` is read by "choice" only.
GRADERS = {"math": _grade_math, "numeric": _grade_numeric, "choice": _grade_choice}


def _check_kind(kind: str) -> None:
    if kind not in GRADERS:
        raise ValueError(f"grader {kind!r} is unknown; use one of {sorted(GRADERS)}")


# --------------------------------------------------------------------------- protocols

def _grade_kit(kind, response, gold, timeout_s, options, judge, benchmark, question) -> Grade:
    return GRADERS[kind](response, gold, timeout_s, options)


def _grade_harness(kind, response, gold, timeout_s, options, judge, benchmark, question) -> Grade:
    """The s1-harness rules (``tts_prune.tts.harness``) on the whole response."""
    split = harness_split(response)
    attempt, stated = harness_extract(split)
    if kind == "choice":
        expected = gold_letter(gold)
        letter, route = (attempt.upper() if attempt in ("a", "b", "c", "d") else attempt), "letter"
        if letter not in LETTERS:
            if judge is not None:
                if question is None:
                    raise ValueError("the s1-harness GPQA judge needs the question with its choices: pass "
                                     "question=harness.judge_question(problem)")
                letter, route = judge_letter(judge, question, attempt), "judge"
            else:  # offline: the kit's anchored letters on the split text stand in for the judge
                letter, route = extract_letter(split, "".join(LETTERS)), FALLBACK_ROUTE[kind]
        letter = letter if letter in LETTERS else INVALID  # never a default letter
        return Grade(correct=letter == expected, prediction=letter, no_answer=letter == INVALID, timeout=False,
                     route=route)
    gt = gold_string(gold)
    as_int = int_string(attempt)
    if as_int is not None and gt.isdigit():
        return Grade(correct=as_int == gt, prediction=as_int, no_answer=False, timeout=False, route="integer")
    if judge is not None:
        final = judge_math(judge, benchmark, gt, attempt)
        return Grade(correct=final == gt, prediction=final[:500] if stated else None, no_answer=not stated,
                     timeout=False, route="judge")
    # offline: the kit's grader on the split text (box and cue included) stands in for the judge
    return replace(GRADERS[kind](split, gold, timeout_s, options), route=FALLBACK_ROUTE[kind])


# Every protocol: (kind, response, gold, timeout_s, options, judge, benchmark, question) -> Grade.
PROTOCOLS = {"kit": _grade_kit, "s1-harness": _grade_harness}


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"grading protocol {protocol!r} is unknown; use one of {sorted(PROTOCOLS)} (kit: the kit's "
                         "extraction; s1-harness: the rules of the paper's harness, with an optional judge)")
    return protocol


def grade_answer(kind: str, response: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 options: int | None = None, protocol: str = "kit", judge: JudgeConfig | dict | None = None,
                 benchmark: str = "", question: str | None = None) -> Grade:
    """Grade ``response`` against ``gold`` with the ``kind`` grader (``GRADERS``: math, numeric, choice).

    ``timeout_s`` bounds math grading (numbers and letters never take long). ``options`` (choice only)
    is the number of options; by default letters A..D, or up to the gold letter when it is later.
    ``protocol`` (``PROTOCOLS``): ``kit``, or ``s1-harness`` with an optional ``judge`` (a ``JudgeConfig``
    or its dict; None: the offline fallback); ``benchmark`` picks the harness task's judge prompt and
    ``question`` is the GPQA question as the judge reads it (``harness.judge_question``).
    """
    _check_kind(kind)
    return PROTOCOLS[check_protocol(protocol)](kind, response, gold, timeout_s, options, JudgeConfig.from_dict(judge),
                                               benchmark, question)


def missing(answer) -> bool:
    """No answer to vote with: None, NaN (a frame's empty cell) or blank text."""
    return answer is None or (isinstance(answer, float) and math.isnan(answer)) or not str(answer).strip()


def _same_number(a: str, b: str, timeout_s: float) -> bool:
    first, second = parse_number(a), parse_number(b)
    return first is not None and first == second


def _same_letter(a: str, b: str, timeout_s: float) -> bool:
    return a.strip().strip("()").upper() == b.strip().strip("()").upper()


def _same_math(a: str, b: str, timeout_s: float) -> bool:
    if a.strip() == b.strip():
        return True
    try:
        return default_worker().call(__name__, "_math_equivalent_in_worker", (a, b), timeout_s)
    except GradingTimeout:
        return False


# Every kind's equivalence of two extracted answers: (a, b, timeout_s) -> bool. Same keys as GRADERS.
EQUIVALENCES = {"math": _same_math, "numeric": _same_number, "choice": _same_letter}


def answers_equivalent(kind: str, a, b, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two EXTRACTED answers (``Grade.prediction``) mean the same: the one equivalence that majority
    votes (``scoring.answer_classes``) and every table use.

    math: ``verify(parse(a), parse(b))`` in the worker (False when it times out); numeric: equal values;
    choice: the same letter. A missing answer (None, NaN, blank) is equivalent to nothing, not even another
    missing one: it never votes.
    """
    _check_kind(kind)
    if missing(a) or missing(b):
        return False
    return bool(EQUIVALENCES[kind](str(a), str(b), timeout_s))
