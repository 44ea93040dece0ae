"""Why each failure failed, per budget: one class per record, shares per run, pruned-vs-dense differences.

Classes, first match wins (the order is the precedence):

1. ``correct``: graded correct.
2. ``right in thinking``: wrong or missing answer, but the thinking states the gold answer: one of its
   candidate answers (every ``\\boxed{}``, every span after an answer cue such as "the answer is", and its final
   number; for multiple choice the letter its anchored extractor reads) is graded correct by the benchmark's own
   grader (``tts_prune.tts.grading.grade_answer``: math-verify for math). The model reached the answer and did
   not commit to it: the failure quantization studies of reasoning models report ("Quantization Hurts
   Reasoning?", arXiv 2504.04823).
3. ``capped answer``: wrong or missing, and the answer ran out of its own token budget (``answer_capped``).
4. ``no answer, capped thinking``: nothing extractable, after budget forcing cut the thinking (``capped``).
5. ``no answer, natural stop``: nothing extractable, after the model ended its thinking itself.
6. ``wrong``: a committed, wrong answer.

A candidate that merely mentions the gold number inside a calculation does not count: only boxed, cued or
final answers do. ``failure_differences`` gives, per class, the paired pruned-minus-dense difference in the share
of records in that class (``tts_prune.tts.stats.paired_difference``: same problems, seeds and budget; bootstrap
CI over problems, sign-flip p-value).
"""
from __future__ import annotations

import math
import re

import pandas as pd

from .extract import CUES, after_cue, boxed_spans, extract_letter, extract_number

CLASSES = ("correct", "right in thinking", "capped answer", "no answer, capped thinking",
           "no answer, natural stop", "wrong")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def thinking_candidates(thinking: str, kind: str) -> list[str]:
    """Answers the thinking states: every boxed span, every cued span, its final number (or, for multiple choice,
    the anchored letter), wrapped so the ``kind`` grader reads exactly that span."""
    thinking = _text(thinking)
    if not thinking.strip():
        return []
    if kind == "choice":
        letter = extract_letter(thinking)
        return [f"Answer: {letter}"] if letter else []
    spans = [content for _, _, content in boxed_spans(thinking)]
    lower = thinking.lower()
    for cue in CUES:  # every occurrence of every cue, not only the last one
        for match in re.finditer(re.escape(cue), lower):
            span = after_cue(thinking[match.start():])
            if span:
                spans.append(span)
    final = extract_number(thinking)
    if final:
        spans.append(final)
    unique = list(dict.fromkeys(s.strip() for s in spans if s and s.strip()))
    return [f"\\boxed{{{s}}}" for s in unique]


def right_in_thinking(thinking: str, gold: str, kind: str) -> bool:
    """Whether any ``thinking_candidates`` is graded correct against ``gold`` by the ``kind`` grader."""
    from .grading import grade_answer

    return any(grade_answer(kind, candidate, _text(gold)).correct for candidate in thinking_candidates(thinking, kind))


def _kind(benchmark) -> str:
    from .benchmarks import resolve

    return resolve(str(benchmark))[0].grader


def classify(records: pd.DataFrame) -> pd.Series:
    """The class of every record (``CLASSES``), indexed like ``records``."""
    missing = [c for c in ("correct", "benchmark") if c not in records.columns]
    if missing:
        raise ValueError(f"failure classes need columns {missing}; pass the records of tts_prune.load_results")
    kinds = {b: _kind(b) for b in records["benchmark"].unique()}
    def flag(name):
        return records[name].fillna(False).astype(bool) if name in records else pd.Series(False, records.index)

    correct, no_answer = flag("correct"), flag("no_answer")
    out = pd.Series("wrong", index=records.index, dtype=object)
    out[no_answer & ~flag("capped")] = "no answer, natural stop"
    out[no_answer & flag("capped")] = "no answer, capped thinking"
    out[~correct & flag("answer_capped")] = "capped answer"
    failed = records[~correct]
    if "thinking" in records and "gold" in records and len(failed):
        hit = [right_in_thinking(t, g, kinds[b]) for t, g, b in zip(failed["thinking"], failed["gold"],
                                                                     failed["benchmark"])]
        out[failed.index[hit]] = "right in thinking"
    out[correct] = "correct"
    return out


def failure_breakdown(df: pd.DataFrame, by=("model", "benchmark", "run", "budget")) -> pd.DataFrame:
    """Share of records in each class per group of ``by`` (the columns present): one row per group, one column
    per class (they sum to 1), plus ``records``. Pass ``explorer.runs`` of the records for the ``run`` column."""
    by = [c for c in by if c in df.columns]
    classes = classify(df)
    shares = pd.crosstab([df[c] for c in by], classes, normalize="index").reindex(columns=list(CLASSES), fill_value=0.0)
    shares["records"] = df.groupby(by).size()
    return shares.reset_index()


def failure_differences(df: pd.DataFrame, keys=("model", "benchmark", "budget"), n_boot: int = 2000,
                        seed: int = 0) -> pd.DataFrame:
    """Per pruned run, ``keys`` group and class: pruned minus dense share of records in the class, paired on
    (problem, seed) with a 95% bootstrap CI and p-value (``tts_prune.tts.stats.paired_difference``)."""
    from .stats import paired_difference
    from .variance import pruned_and_dense

    rows = []
    for labels, pruned, dense in pruned_and_dense(df.assign(failure=classify(df)), keys):
        for name in CLASSES:
            indicator = lambda f: f.assign(correct=(f["failure"] == name).astype(float))  # noqa: E731
            result = paired_difference(indicator(pruned), indicator(dense), n_boot=n_boot, seed=seed)
            rows.append({**labels, "failure": name, **result})
    return pd.DataFrame(rows)
