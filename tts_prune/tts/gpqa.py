"""GPQA Diamond's problems (Rein et al., arXiv 2311.12022) as the kit asks them and as the paper's harness asks
them. The set asks that its questions never appear in plain text online: options are shuffled with a
per-question seed and records keep only a hash in printable fields (``benchmarks.redact``)."""
from __future__ import annotations

import hashlib
import random

LETTERS = "ABCDEFGHIJ"


def question_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def gpqa_problem(row: dict) -> dict:
    """Question with shuffled options; the shuffle seed is the question's own hash, so it is fixed."""
    question = row["Question"].strip()
    options = [row["Correct Answer"]] + [row[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
    options = [str(o).strip() for o in options]
    order = list(range(4))
    random.Random(int(question_hash(question), 16)).shuffle(order)
    choices = [options[k] for k in order]
    gold = LETTERS[order.index(0)]
    text = question + "\n\n" + "\n".join(f"({LETTERS[k]}) {c}" for k, c in enumerate(choices))
    text += "\n\nAnswer with the letter of the correct option."
    return {"id": f"gpqa-{question_hash(question)}", "problem": text, "answer": gold, "choices": choices,
            "question": question}


def gpqa_openai_problems(rows: list[dict], seed: int = 0) -> list[dict]:
    """GPQA as the harness's ``gpqa_diamond_openai`` task builds it (``tasks/gpqa/openai/utils.py``).

    Prompt: ``{Question}\n\nA) {choice1}\nB) ...\nD) {choice4}`` with no instruction (their ``QUERY_TEMPLATE``,
    ``judge_prompts.json``). Order: per row, in file order, ``[Incorrect 1, Incorrect 2, Incorrect 3, Correct]``
    shuffled by Python's ``random`` after ``random.seed(seed)`` (lm-eval seeds it with ``--seed``, default 0,
    which their script keeps). Whether this reproduces their letters depends on what their run did between
    that seed and ``process_docs`` (lm-eval builds the vLLM model first; an engine in the same process that
    reseeds ``random`` changes every shuffle), on ``datasets``' map cache (a cached ``process_docs`` result is
    reused whatever the seed) and on the row order of the file, which must be the hub's ``Idavidrein/gpqa``
    ``gpqa_diamond`` train order. None of these can be checked offline: this is their procedure, not
    necessarily their letters. Texts are used unstripped, as theirs.
    """
    from .judge import judge_prompts

    template = judge_prompts()["gpqa_prompt"]["template"]
    rng = random.Random(seed)
    problems = []
    for row in rows:
        choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"], row["Correct Answer"]]
        rng.shuffle(choices)
        text = template.format(Question=row["Question"], **{f"choice{k + 1}": c for k, c in enumerate(choices)})
        problems.append({"id": f"gpqa-{question_hash(row['Question'].strip())}", "problem": text,
                         "answer": LETTERS[choices.index(row["Correct Answer"])], "choices": choices,
                         "question": row["Question"]})
    return problems
