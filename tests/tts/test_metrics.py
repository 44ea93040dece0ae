"""Parallel-scaling metrics against independent computations: brute-force subset enumeration, closed
forms, and hand-made equivalent answers."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest

import tts_prune
from tts_prune.tts.grading import answers_equivalent
from tts_prune.tts.metrics import answer_classes, maj_at_k, parallel_table, pass_at_k


def brute_pass(n, c, k):
    flags = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


def brute_maj(labels, correct, k):
    # Expected majority correctness over every k-subset; ties split evenly; label -1 never votes.
    total = 0.0
    subsets = list(itertools.combinations(range(len(labels)), k))
    for subset in subsets:
        votes = {}
        for i in subset:
            if labels[i] >= 0:
                votes[labels[i]] = votes.get(labels[i], 0) + 1
        if not votes:
            continue
        top = max(votes.values())
        winners = [lab for lab, v in votes.items() if v == top]
        total += sum(np.mean([correct[i] for i in range(len(labels)) if labels[i] == w]) for w in winners) / len(winners)
    return total / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_and_closed_form(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = brute_pass(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
            assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    # C(2000, 1000) ~ 1e600 overflows a float; the product form does not.
    exact = 1 - math.comb(1990, 1000) / math.comb(2000, 1000)  # Python ints, then one division
    assert pass_at_k(2000, 10, 1000) == pytest.approx(exact, rel=1e-12)
    assert tts_prune.pass_at_k(10, 3, 1) == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [(0, 0, 1), (5, 6, 1), (5, 2, 6), (5, 2, 0), (5, 2.5, 1)])
def test_pass_at_k_rejects_impossible_counts(bad):
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(*bad)


def test_equivalent_answers_are_one_vote_and_empty_answers_never_vote():
    assert answers_equivalent("math", "\\frac12", "0.5") and answers_equivalent("math", "\\frac{1}{2}", "1/2")
    assert not answers_equivalent("math", "\\frac12", "0.6") and not answers_equivalent("math", "", "")
    assert answers_equivalent("numeric", "1,000", "1000") and not answers_equivalent("numeric", "7", "8")
    assert answers_equivalent("choice", "(C)", "c")
    assert answer_classes(["\\frac12", "0.5", "", None, "3", "3.0"], "math") == [0, 0, -1, -1, 1, 1]
    with pytest.raises(ValueError, match="unknown"):
        answers_equivalent("essay", "a", "a")


def test_maj_at_k_hand_made_case():
    # Gold 1/2. Samples: \frac12, 0.5, 3, 3, "" -> classes [0, 0, 1, 1, -1], correct [1, 1, 0, 0, 0].
    labels = answer_classes(["\\frac12", "0.5", "3", "3", ""], "math")
    correct = [1, 1, 0, 0, 0]
    assert maj_at_k(labels, correct, 1) == pytest.approx(2 / 5)   # the empty sample never wins
    assert maj_at_k(labels, correct, 2) == pytest.approx(5 / 10)  # counted by hand over the 10 pairs
    assert maj_at_k(labels, correct, 5) == pytest.approx(0.5)     # 2-2 tie; raw strings would say 0
    assert maj_at_k([-1, -1], [0, 0], 2) == 0.0


@pytest.mark.parametrize("seed", range(12))
def test_maj_at_k_equals_enumeration_of_subsets(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    labels = rng.integers(-1, 4, size=n).tolist()
    grade = {lab: float(rng.random() < 0.4) for lab in range(-1, 4)}
    grade[-1] = 0.0
    correct = [grade[lab] for lab in labels]
    for k in range(1, n + 1):
        assert maj_at_k(labels, correct, k) == pytest.approx(brute_maj(labels, correct, k), abs=1e-12)


def records(per_problem, budget=8, run="dense", tokens=10):
    rows = []
    for p, samples in enumerate(per_problem):
        for seed, (pred, ok) in enumerate(samples):
            rows.append({"problem_id": f"p{p}", "seed": seed, "budget": budget, "run": run, "benchmark": "math500",
                         "prediction": pred, "correct": ok, "thinking_tokens": tokens, "answer_tokens": 2})
    return pd.DataFrame(rows)


def test_parallel_table_by_run_budget_k_with_bootstrap_ci():
    df = pd.concat([
        records([[("\\frac12", True), ("0.5", True), ("3", False), ("3", False)],
                 [("7", False), ("7", False), ("2", True), ("", False)]]),
        records([[("1", True)] * 4, [("9", False)] * 4], budget=16, tokens=20),
    ])
    table = parallel_table(df, by=("run", "budget"), n_boot=500).set_index(["budget", "k"])
    assert sorted(table.loc[8].index) == [1, 2, 4]
    assert table.loc[(8, 1), "pass_at_k"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert table.loc[(8, 2), "pass_at_k"] == pytest.approx((brute_pass(4, 2, 2) + brute_pass(4, 1, 2)) / 2)
    assert table.loc[(8, 4), "coverage"] == 1.0
    assert table.loc[(8, 4), "maj_at_k"] == pytest.approx((0.5 + 0.0) / 2)  # tie on p0; "7" wins on p1
    assert table.loc[(16, 4), "pass_at_k"] == 0.5 and table.loc[(16, 4), "tokens"] == pytest.approx(4 * 22)
    for metric in ("pass_at_k", "maj_at_k"):
        assert (table[f"{metric}_low"] <= table[metric] + 1e-12).all()
        assert (table[metric] <= table[f"{metric}_high"] + 1e-12).all()
    with pytest.raises(ValueError, match="exceeds"):
        parallel_table(df, ks=[5])


def test_token_cost_table_puts_budgets_and_samples_on_one_token_axis():
    from tts_prune.tts.metrics import token_cost_table

    greedy = pd.concat([records([[("1", True)], [("5", False)]], budget=8, tokens=8),       # 10 tokens per sample
                        records([[("1", True)], [("4", True)]], budget=32, tokens=30)])     # 32 tokens per sample
    sampled = records([[("1", True), ("2", False), ("1", True)], [("5", False), ("5", False), ("4", True)]],
                      budget=8, tokens=8)
    table = token_cost_table(greedy, sampled, n_boot=200)
    seq = table[table["mode"] == "sequential"].set_index("budget")
    assert seq.loc[8, "tokens"] == 10 and seq.loc[8, "acc"] == pytest.approx(0.5)
    assert seq.loc[32, "tokens"] == 32 and seq.loc[32, "acc"] == pytest.approx(1.0)
    par = table[table["mode"] != "sequential"].set_index(["mode", "k"])
    assert par.loc[("parallel maj@k", 3), "tokens"] == 30
    # p0: "1" wins every subset it is in twice; over pairs: {1,2} tie .5, {1,1} 1, {2,1} .5 -> 2/3. p1: "5" (wrong)
    # wins {5,5}; {5,4} ties .5 twice -> 1/3.
    assert par.loc[("parallel maj@k", 2), "acc"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert par.loc[("parallel maj@k", 3), "acc"] == pytest.approx((1 + 0) / 2)
    assert par.loc[("parallel pass@k", 2), "acc"] == pytest.approx((1 + brute_pass(3, 1, 2)) / 2)
    assert set(token_cost_table(greedy, n_boot=200)["mode"]) == {"sequential"}  # one sample per problem
    own = token_cost_table(sampled, n_boot=200)  # without a probe frame: df's own multi-sample budgets
    assert own[own["mode"] == "parallel maj@k"]["acc"].tolist() == pytest.approx([0.5, 0.5])
