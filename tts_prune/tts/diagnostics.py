"""Trace diagnostics: how a model spends its thinking, per record and per (run, budget).

The paper (arXiv 2604.25098) explains pruned models that match or beat the dense one by "overthinking":
redundant parameters make a model think longer without benefit. These diagnostics measure the symptoms
from the stored traces, with no extra generation:

- ``thinking_tokens``, ``capped`` (thinking hit the budget), ``answer_capped`` (the answer hit its own cap;
  only where the evaluator records it), ``no_answer`` (no extractable answer; the record's own flag where
  present, else an empty ``prediction``);
- ``repetition``: the share of word n-grams of the thinking that repeat an earlier n-gram,
  ``1 - distinct / total`` (n = 3 by default; words and single punctuation marks are the units). A trace
  looping on itself scores near 1, a trace that never repeats 0. The predecessor harness (arXiv 2510.22228)
  measures diversity across samples with self-BLEU; this is its within-trace counterpart;
- ``verify_words``: occurrences of self-verification / reflection words (``VERIFY_WORDS``, whole words,
  case-insensitive), the "Wait" that s1 appends to extend thinking (arXiv 2501.19393) and the "aha"
  words DeepSeek-R1 reports (arXiv 2501.12948);
- aggregated: ``tokens_per_correct`` = generated tokens (thinking + answer) summed over the group, divided
  by its number of correct records (inf when none is correct).

``overthinking_test`` asks the paper's question with a paired test: on records matched on (problem, seed,
budget) where BOTH the pruned and the dense model are correct, does the pruned one use more thinking tokens?
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Reflection vocabulary, matched as whole words (case-insensitive). Documented so that counts are comparable
# across runs; edit by passing ``words=`` rather than changing this list in place.
VERIFY_WORDS = ("wait", "check", "verify", "double-check", "recheck", "re-check", "confirm", "hmm",
                "actually", "mistake", "alternatively", "reconsider", "re-evaluate", "let me re")
_UNITS = re.compile(r"\w+|[^\w\s]")


def repetition(text: str, n: int = 3) -> float:
    """Share of the ``n``-grams of ``text`` (words and punctuation marks) that repeat an earlier one."""
    if n < 1:
        raise ValueError(f"repetition: n={n} must be >= 1 (n-gram length in words)")
    units = _UNITS.findall(str(text or "").lower())
    grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def verify_words(text: str, words=VERIFY_WORDS) -> int:
    """Occurrences of ``words`` in ``text`` as whole words / phrases, case-insensitive."""
    pattern = r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?![\w-])"
    return len(re.findall(pattern, str(text or ""), flags=re.IGNORECASE))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def trace_diagnostics(records: pd.DataFrame, n: int = 3, words=VERIFY_WORDS) -> pd.DataFrame:
    """``records`` with per-record diagnostic columns added (see the module docstring)."""
    needed = ["thinking_tokens", "capped", "correct"]
    missing = [c for c in needed if c not in records.columns]
    if missing:
        raise ValueError(f"trace_diagnostics needs evaluation records with {needed}; missing {missing}")
    df = records.copy()
    thinking = df["thinking"] if "thinking" in df.columns else pd.Series("", index=df.index)
    df["repetition"] = [repetition(t, n) for t in thinking]
    df["verify_words"] = [verify_words(t, words) for t in thinking]
    if "no_answer" in df.columns:
        df["no_answer"] = df["no_answer"].fillna(False).astype(bool)
    else:
        prediction = df["prediction"] if "prediction" in df.columns else pd.Series(None, index=df.index)
        df["no_answer"] = [_missing(p) for p in prediction]
    df["capped"] = df["capped"].astype(bool)
    df["generated_tokens"] = df["thinking_tokens"] + (df["answer_tokens"] if "answer_tokens" in df.columns else 0)
    return df


def diagnostics_table(records: pd.DataFrame, by=("run", "budget"), n: int = 3, words=VERIFY_WORDS) -> pd.DataFrame:
    """Per group of ``by``: accuracy, thinking tokens, share capped / answer capped / no answer, mean repetition,
    verification words per trace, tokens per correct answer, records."""
    df = trace_diagnostics(records, n, words)
    by = [c for c in by if c in df.columns]
    if not by:
        raise ValueError(f"diagnostics_table: none of the `by` columns are in the records (have {list(df.columns)})")
    rows = []
    for key, group in df.groupby(by, sort=True):
        solved = int(group["correct"].astype(bool).sum())
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(records=len(group), accuracy=float(group["correct"].astype(float).mean()),
                   thinking_tokens=float(group["thinking_tokens"].mean()),
                   capped=float(group["capped"].mean()),
                   answer_capped=(float(group["answer_capped"].astype(float).mean())
                                  if "answer_capped" in group.columns else float("nan")),
                   no_answer=float(group["no_answer"].mean()), repetition=float(group["repetition"].mean()),
                   verify_words=float(group["verify_words"].mean()),
                   tokens_per_correct=float(group["generated_tokens"].sum() / solved) if solved else float("inf"))
        rows.append(row)
    return pd.DataFrame(rows)


def overthinking_test(pruned: pd.DataFrame, dense: pd.DataFrame, on=("problem_id", "seed", "budget"),
                      value: str = "thinking_tokens", **kwargs) -> dict:
    """Pruned minus dense ``value`` on matched records where both are correct: diff, 95% CI, p-value, n.

    The statistics are ``tts_prune.tts.stats.paired_difference``'s (per-problem means, problem-level
    bootstrap CI, sign-flip permutation p-value) applied to ``value`` instead of correctness. A positive,
    significant diff supports "pruned models think longer at equal correctness"."""
    on = [c for c in on if c in pruned.columns and c in dense.columns]
    # distinct keys: several calibration seeds of one pruned run share (problem, seed, budget) and stay paired once each
    both = pruned[pruned["correct"].astype(bool)][on].merge(dense[dense["correct"].astype(bool)][on], on=on)
    both = both.drop_duplicates()
    if both.empty:
        raise ValueError(f"overthinking_test: no (problem, seed, budget) where both models are correct on {on}; "
                         "it compares thinking length at equal correctness only")
    from .stats import paired_difference

    pick = lambda frame: frame.merge(both, on=on).assign(correct=lambda f: f[value].astype(float))  # noqa: E731
    return paired_difference(pick(pruned), pick(dense), on=on, **kwargs)
