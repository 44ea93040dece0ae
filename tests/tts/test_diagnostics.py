"""Trace diagnostics on hand-made records, and the paired overthinking test against a direct computation."""
import itertools

import numpy as np
import pandas as pd
import pytest

from tts_prune.tts.diagnostics import diagnostics_table, overthinking_test, repetition, trace_diagnostics, verify_words


def test_repetition_share_of_repeated_ngrams():
    # a b c a b c -> trigrams abc, bca, cab, abc: 4 grams, 3 distinct
    assert repetition("a b c a b c") == pytest.approx(0.25)
    assert repetition("a b c d e") == 0.0 and repetition("") == 0.0 and repetition("x y", n=3) == 0.0
    assert repetition("7+7=14 7+7=14", n=2) == pytest.approx(1 - 5 / 9)  # units 7 + 7 = 14 twice: 9 bigrams, 5 distinct
    with pytest.raises(ValueError, match="n=0"):
        repetition("a", n=0)


def test_verify_words_whole_words_case_insensitive():
    assert verify_words("Wait, let me check. WAIT... verify? waiting rechecked checked") == 4
    assert verify_words("Hmm, actually a mistake; double-check it") == 4
    assert verify_words("wait wait", words=("hmm",)) == 0


RECORDS = pd.DataFrame([
    {"run": "dense", "budget": 8, "correct": True, "thinking_tokens": 8, "answer_tokens": 2, "capped": True,
     "thinking": "wait check a b c a b c", "prediction": "4", "answer_capped": False},
    {"run": "dense", "budget": 8, "correct": False, "thinking_tokens": 4, "answer_tokens": 4, "capped": False,
     "thinking": "x y z", "prediction": "", "answer_capped": True},
    {"run": "dense", "budget": 16, "correct": False, "thinking_tokens": 16, "answer_tokens": 0, "capped": True,
     "thinking": "", "prediction": None, "answer_capped": True},
])


def test_per_record_and_aggregated_diagnostics():
    per = trace_diagnostics(RECORDS)
    assert per["no_answer"].tolist() == [False, True, True]
    assert per["verify_words"].tolist() == [2, 0, 0]
    assert per["repetition"].tolist() == pytest.approx([1 / 6, 0.0, 0.0])  # 6 trigrams, 5 distinct
    table = diagnostics_table(RECORDS).set_index("budget")
    assert table.loc[8, "thinking_tokens"] == 6 and table.loc[8, "capped"] == 0.5
    assert table.loc[8, "answer_capped"] == 0.5 and table.loc[8, "no_answer"] == 0.5
    assert table.loc[8, "tokens_per_correct"] == pytest.approx((10 + 8) / 1)
    assert table.loc[16, "tokens_per_correct"] == float("inf") and table.loc[16, "accuracy"] == 0.0
    # The evaluator's own no_answer flag wins over an empty prediction when present.
    assert trace_diagnostics(RECORDS.assign(no_answer=[True, False, False]))["no_answer"].tolist() == [True, False, False]
    assert np.isnan(diagnostics_table(RECORDS.drop(columns="answer_capped"))["answer_capped"]).all()
    with pytest.raises(ValueError, match="thinking_tokens"):
        trace_diagnostics(RECORDS.drop(columns="thinking_tokens"))


def test_overthinking_test_pairs_records_where_both_are_correct():
    rows = []
    # (problem, seed): pruned tokens, dense tokens, dense correct
    cases = {("p0", 0): (30, 10, True), ("p0", 1): (20, 20, True), ("p1", 0): (50, 40, True),
             ("p1", 1): (99, 1, False), ("p2", 0): (15, 25, True)}
    pruned = pd.DataFrame([{"problem_id": p, "seed": s, "budget": 8, "correct": True, "thinking_tokens": t}
                           for (p, s), (t, _, _) in cases.items()])
    dense = pd.DataFrame([{"problem_id": p, "seed": s, "budget": 8, "correct": ok, "thinking_tokens": t}
                          for (p, s), (_, t, ok) in cases.items()])
    result = overthinking_test(pruned, dense, n_perm=20000)
    per_problem = np.array([(20 + 0) / 2, 10, -10])  # ("p1", 1) is excluded: dense got it wrong
    assert result["diff"] == pytest.approx(per_problem.mean()) and result["n"] == 4
    assert result["ci_low"] <= result["diff"] <= result["ci_high"]
    flips = [abs(np.mean(np.array(s) * per_problem)) for s in itertools.product([-1, 1], repeat=3)]
    exact = np.mean(np.array(flips) >= abs(per_problem.mean()) - 1e-12)
    assert result["p_value"] == pytest.approx(exact, abs=0.02)
    with pytest.raises(ValueError, match="both models are correct"):
        overthinking_test(pruned, dense.assign(correct=False))


def test_overthinking_test_keeps_calibration_replicates_paired_once():
    dense = pd.DataFrame([{"problem_id": "p0", "seed": 0, "budget": 8, "correct": True, "thinking_tokens": 10},
                          {"problem_id": "p1", "seed": 0, "budget": 8, "correct": True, "thinking_tokens": 10}])
    # two calibration seeds of one pruned run: p0 uses 14 and 18 tokens, p1 uses 10 and 12
    pruned = pd.DataFrame([{"problem_id": p, "seed": 0, "budget": 8, "correct": True, "thinking_tokens": t,
                            "calibration_seed": cs} for p, t, cs in [("p0", 14, 0), ("p0", 18, 1), ("p1", 10, 0),
                                                                      ("p1", 12, 1)]])
    result = overthinking_test(pruned, dense, n_perm=100)
    assert result["diff"] == pytest.approx(((4 + 8) / 2 + (0 + 2) / 2) / 2) and result["n"] == 4
