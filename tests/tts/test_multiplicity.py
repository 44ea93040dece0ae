"""Holm and Benjamini-Hochberg adjusted p-values against hand computations, the step-wise procedures
themselves, and scipy."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tts_prune.tts.multiplicity import add_adjusted, adjust_pvalues, bh, holm

P = [0.01, 0.04, 0.03, 0.005]


def test_hand_computed_values():
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max.
    assert holm(P).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top.
    assert bh(P).tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])


def holm_rejects(p, alpha):
    order, m, out = np.argsort(p), len(p), set()
    for i, j in enumerate(order):
        if p[j] > alpha / (m - i):
            break
        out.add(int(j))
    return out


def bh_rejects(p, alpha):
    order, m = np.argsort(p), len(p)
    passing = [i for i in range(m) if p[order[i]] <= alpha * (i + 1) / m]
    return {int(j) for j in order[:max(passing) + 1]} if passing else set()


@pytest.mark.parametrize("seed", range(5))
def test_adjusted_p_reject_exactly_what_the_procedures_reject(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(15), rng.random(5) * 0.01])
    for alpha in (0.01, 0.05, 0.1, 0.2):
        assert {int(i) for i in np.flatnonzero(holm(p) <= alpha)} == holm_rejects(p, alpha)
        assert {int(i) for i in np.flatnonzero(bh(p) <= alpha)} == bh_rejects(p, alpha)
    assert bh(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))


def test_table_columns_and_errors():
    table = add_adjusted(pd.DataFrame({"p_value": P}), alpha=0.05)
    assert table["survives_holm"].tolist() == [True, False, False, True]
    assert table["survives_bh"].tolist() == [True, True, True, True]
    with pytest.raises(ValueError, match="unknown"):
        adjust_pvalues(P, "bonferonni")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, float("nan")])
