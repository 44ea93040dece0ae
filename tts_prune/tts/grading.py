"""Grading: math answers with math-verify, multiple choice by letter, GSM8K-style numbers.

Math answers are extracted from the LAST ``\\boxed{}`` first, then from an answer cue ("Final Answer:",
"The answer is"), then math-verify's own extraction, and compared with ``math_verify.verify`` as in
the MATH500 / AIME evaluations of s1 (arXiv 2501.19393) and DeepSeek-R1 (arXiv 2501.12948).
math-verify's timeouts use SIGALRM, which only works in the main thread, so both calls run with the
timeout disabled (``parsing_timeout=None``, ``timeout_seconds=None``): grading works from worker
threads and notebooks; inputs are short, so an unbounded sympy call is not a practical risk.
"""
from __future__ import annotations

import re
from fractions import Fraction

CUES = ("final answer:", "final answer is", "the answer is", "answer:")
_LETTER = re.compile(r"\(?\b([A-J])\b\)?")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None when absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth, j = 0, i
    while j < len(text):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
        j += 1
    return None


def after_cue(text: str) -> str | None:
    """Text after the last answer cue, up to the end of its line; None when there is no cue."""
    lower = text.lower()
    best = max((lower.rfind(cue) + len(cue), cue) for cue in CUES)
    if best[0] < len(best[1]):
        return None
    line = text[best[0]:].strip().split("\n")[0].strip()
    return line.strip(" .$*") or None


def extract_answer(response: str) -> str | None:
    """The candidate answer string: last boxed, else the answer cue, else None."""
    boxed = last_boxed(response)
    return boxed if boxed is not None else after_cue(response)


def _parse(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=None)


def _strip_text(s: str) -> str:
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|textbf|mbox)\{([^}]*)\}", r"\1", s)
    return s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\%", "").replace("$", "").strip()


def _plain(s: str) -> str:
    return re.sub(r"\s+", "", _strip_text(s)).lower().rstrip(".")


def grade_math(response: str, gold: str) -> bool:
    """True when ``response``'s final answer equals ``gold`` mathematically (math-verify)."""
    from math_verify import verify

    candidate = extract_answer(response)
    gold = str(gold).strip()
    if candidate is None:
        target = _parse(response)  # math-verify's own anchors (last number / latex) as the last resort
    else:
        if _plain(candidate) == _plain(gold):
            return True
        target = _parse(f"${_strip_text(candidate)}$") or _parse(candidate)
    expected = _parse(f"${_strip_text(gold)}$") or _parse(gold)
    if not target or not expected:
        return False
    return bool(verify(expected, target, timeout_seconds=None))


def _number(text: str) -> Fraction | None:
    text = text.replace(",", "").replace("$", "").replace("\\!", "").strip()
    match = re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", text)
    if match is None:
        return None
    return Fraction(text) if "/" not in text else Fraction(*map(int, text.split("/")))


def grade_numeric(response: str, gold: str) -> bool:
    """GSM8K-style: the final number (boxed, cue, else the last number in the text) equals ``gold``."""
    expected = _number(str(gold).split("####")[-1])
    if expected is None:
        raise ValueError(f"gold answer {gold!r} is not a number; numeric grading needs e.g. '42' or '#### 42'")
    candidate = extract_answer(response)
    pool = candidate if candidate is not None else response
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?", _strip_text(pool))
    if not numbers:
        return False
    value = _number(numbers[-1])
    return value is not None and value == expected


def extract_letter(response: str, letters: str = "ABCD") -> str | None:
    """The chosen option letter: boxed, then cue, then the last standalone letter in ``letters``."""
    for source in (last_boxed(response), after_cue(response)):
        if source:
            found = [m for m in _LETTER.findall(_strip_text(source)) if m in letters]
            if found:
                return found[0]
    found = [m for m in re.findall(r"\(([A-J])\)|\b([A-J])\b(?=[.):]?\s*$)", response.strip())]
    flat = [a or b for a, b in found if (a or b) in letters]
    return flat[-1] if flat else None


def grade_choice(response: str, gold: str) -> bool:
    """Multiple choice: the extracted letter equals the gold letter ("(C)" and "C" are the same)."""
    gold_letter = str(gold).strip().strip("()").upper()
    if len(gold_letter) != 1:
        raise ValueError(f"gold answer {gold!r} is not an option letter; multiple choice needs 'A'..'J'")
    return extract_letter(response) == gold_letter


GRADERS = {"math": grade_math, "numeric": grade_numeric, "choice": grade_choice}


def grade_with(kind: str, response: str, gold: str) -> bool:
    if kind not in GRADERS:
        raise ValueError(f"grader {kind!r} is unknown; use one of {sorted(GRADERS)}")
    return GRADERS[kind](response, gold)
