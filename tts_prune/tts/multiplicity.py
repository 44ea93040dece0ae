"""Multiple-comparison corrections for the grid's many pruned-vs-dense tests.

A study grid runs hundreds of paired tests (run x benchmark x budget); at alpha = 0.05 about one in
twenty true nulls comes out "significant" by chance. Two standard adjustments, as adjusted p-values
(reject where adjusted p <= alpha):

- ``holm``: Holm, "A simple sequentially rejective multiple test procedure" (Scand. J. Statist. 1979).
  Controls the family-wise error rate (the chance of ANY false claim) under any dependence.
- ``bh``: Benjamini & Hochberg, "Controlling the false discovery rate" (JRSS-B 1995). Controls the
  expected share of false claims among the claims made, for independent or positively dependent tests;
  matches ``scipy.stats.false_discovery_control(p, method="bh")``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _check(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D sequence; got shape {p.shape}")
    bad = p[~((p >= 0) & (p <= 1))]
    if bad.size:
        raise ValueError(f"p-values must lie in [0, 1]; got {bad[:5].tolist()} (NaN included); drop untested rows first")
    return p


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values: sorted ascending, p_(i) x (m - i + 1), running max, capped at 1."""
    p = _check(p)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def bh(p) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values: p_(i) x m / i, running min from the top, capped at 1."""
    p = _check(p)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out


ADJUSTMENTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"holm": holm, "bh": bh}


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Adjusted p-values by ``method`` (``holm`` or ``bh``); reject where the result is <= alpha."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"adjustment {method!r} is unknown; use one of {sorted(ADJUSTMENTS)}")
    return ADJUSTMENTS[method](p)


def add_adjusted(table, column: str = "p_value", alpha: float = 0.05, methods=("holm", "bh")):
    """A copy of ``table`` with ``p_<method>`` and ``survives_<method>`` columns beside the raw p-values."""
    out = table.copy()
    for method in methods:
        adjusted = adjust_pvalues(out[column].to_numpy(dtype=float), method) if len(out) else np.array([])
        out[f"p_{method}"] = adjusted
        out[f"survives_{method}"] = adjusted <= alpha
    return out
