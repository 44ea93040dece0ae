"""A synthetic scratchpad task whose thinking length varies: labelled running sums.

A problem lists k labelled digits (``A7 B3 C9``, k from 1 to 26); the answer is their sum. The
scratchpad walks the list one line per item, ``A+7=7``, ``B+3=10``, ``C+9=19``: each line copies the
next labelled digit (a content lookup by label) and adds it to the previous total, so the visible
thinking grows linearly with k, from 5 characters to about 200. Cutting the scratchpad short leaves
only a partial sum, which is why accuracy rises with the thinking budget (the effect this kit studies
on reasoning LLMs, s1: arXiv 2501.19393).

Train and test problems never overlap: the split of a problem is a function of a hash of its text
(``split_of``), and the generator only emits problems whose hash falls in the requested split.
"""
from __future__ import annotations

import hashlib
import random
import string

SPLITS = ("train", "test")
LABELS = string.ascii_uppercase  # one label per item, so k <= 26
MAX_ITEMS = len(LABELS)
TEST_FRACTION_PER_MILLE = 100  # 10% of all problem texts belong to the test split
PROMPT = "Sum the digits: {items}"


def split_of(problem: str) -> str:
    """The split a problem text belongs to: a fixed function of its SHA-256, never of a seed."""
    bucket = int(hashlib.sha256(problem.encode()).hexdigest()[:8], 16) % 1000
    return "test" if bucket < TEST_FRACTION_PER_MILLE else "train"


def problem_text(digits: list[int]) -> str:
    """User text for a list of digits, e.g. ``[7, 3]`` -> ``Sum the digits: A7 B3``."""
    return PROMPT.format(items=" ".join(f"{LABELS[i]}{d}" for i, d in enumerate(digits)))


def scratchpad(digits: list[int]) -> str:
    """Running-sum trace, one line per item: ``A+7=7\\nB+3=10``."""
    lines, total = [], 0
    for label, digit in zip(LABELS, digits):
        total += digit
        lines.append(f"{label}+{digit}={total}")
    return "\n".join(lines)


def _validate(n: int, split: str, min_items: int, max_items: int) -> None:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}; pass split='train' or split='test'")
    if n < 0:
        raise ValueError(f"n={n} must be >= 0 (the number of problems to generate)")
    if not 1 <= min_items <= max_items <= MAX_ITEMS:
        raise ValueError(
            f"items range [{min_items}, {max_items}] must satisfy 1 <= min_items <= max_items <= {MAX_ITEMS} "
            f"(one letter label per item)"
        )


def make_problems(
    n: int, seed: int, split: str = "test", min_items: int = 1, max_items: int = MAX_ITEMS
) -> list[dict]:
    """``n`` problems of the given split, deterministic in ``seed``.

    Each is ``{"id", "problem", "answer", "thinking", "items"}``: ``answer`` is the sum as a string,
    ``thinking`` the scratchpad, ``items`` the list length k (uniform in [min_items, max_items]).
    A k whose few possible texts all hash to the other split (k=1 has only 10) is redrawn.
    """
    _validate(n, split, min_items, max_items)
    rng = random.Random(f"toy-task/{split}/{seed}")
    problems: list[dict] = []
    while len(problems) < n:
        k = rng.randint(min_items, max_items)
        for _attempt in range(64):
            digits = [rng.randint(0, 9) for _ in range(k)]
            text = problem_text(digits)
            if split_of(text) == split:
                break
        else:
            continue  # this k has (almost) no texts in this split: draw another k
        problems.append({
            "id": f"toy-{split}-{seed}-{len(problems)}",
            "problem": text,
            "answer": str(sum(digits)),
            "thinking": scratchpad(digits),
            "items": k,
        })
    return problems
