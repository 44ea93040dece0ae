"""The report's comparison of grading protocols: the same stored responses graded by the kit and by the paper's
harness (``s1-harness``), side by side.

``protocol_agreement`` pairs the records of two protocols that grade the same generation (same run, problem,
budget and seed) and gives, per (model, benchmark, run): the accuracy under each, the share of responses on
which they agree, and Cohen's kappa (J. Cohen, "A coefficient of agreement for nominal scales", 1960):
``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share agreeing and ``p_e = p_a p_b + (1 - p_a)(1 - p_b)`` the
agreement two independent graders with those accuracies would reach by chance. Kappa is undefined (NaN)
when ``p_e`` is 1 (both protocols give every response the same verdict).
"""
from __future__ import annotations

import pandas as pd

PAIR = ("problem_id", "budget", "seed")


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two binary verdict vectors (NaN when chance agreement is certain)."""
    a, b = pd.Series(a, dtype=float).reset_index(drop=True), pd.Series(b, dtype=float).reset_index(drop=True)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"cohen_kappa needs two verdict vectors of one non-zero length, got {len(a)} and {len(b)}")
    observed = float((a == b).mean())
    p_a, p_b = float(a.mean()), float(b.mean())
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return float("nan") if chance >= 1 else (observed - chance) / (1 - chance)


def protocol_agreement(df: pd.DataFrame, first: str = "kit", second: str = "s1-harness",
                       keys=("model", "benchmark", "run")) -> pd.DataFrame:
    """Per ``keys``: records graded under both protocols, accuracy under each, share agreeing, Cohen's kappa,
    and how many responses only one protocol credits.

    ``df`` is ``explorer.runs(records)`` with every protocol kept (its ``protocol`` column). Empty when no
    run has records under both protocols.
    """
    columns = [*keys, "pairs", f"acc_{first}", f"acc_{second}", "agree", "kappa", f"only_{first}", f"only_{second}"]
    if df.empty or "protocol" not in df.columns:
        return pd.DataFrame(columns=columns)
    index = [*keys, *PAIR]
    a = df[df["protocol"] == first].drop_duplicates(index).set_index(index)["correct"].astype(float)
    b = df[df["protocol"] == second].drop_duplicates(index).set_index(index)["correct"].astype(float)
    both = pd.concat({"a": a, "b": b}, axis=1, join="inner").reset_index()
    rows = []
    for group, part in both.groupby(list(keys)):
        rows.append({**dict(zip(keys, group)), "pairs": len(part), f"acc_{first}": part["a"].mean(),
                     f"acc_{second}": part["b"].mean(), "agree": float((part["a"] == part["b"]).mean()),
                     "kappa": cohen_kappa(part["a"], part["b"]),
                     f"only_{first}": int(((part["a"] == 1) & (part["b"] == 0)).sum()),
                     f"only_{second}": int(((part["a"] == 0) & (part["b"] == 1)).sum())})
    return pd.DataFrame(rows, columns=columns)
