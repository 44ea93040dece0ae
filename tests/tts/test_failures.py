"""Failure classes on hand-made records whose class is known, and the per-class paired differences."""
import pandas as pd
import pytest

from tts_prune.report.explorer import runs
from tts_prune.tts import failures


def _record(pid, correct=False, no_answer=False, capped=False, answer_capped=False, thinking="", gold="10",
            benchmark="toy-reasoning", recipe=None, seed=0, budget=8):
    return {"problem_id": pid, "seed": seed, "budget": budget, "correct": correct, "no_answer": no_answer,
            "capped": capped, "answer_capped": answer_capped, "thinking": thinking, "gold": gold,
            "benchmark": benchmark, "model": "toy", "recipe": recipe or {}}


CASES = [  # (record, expected class)
    (_record("a", correct=True, thinking="A+7=7\nB+3=10"), "correct"),
    (_record("b", thinking="A+7=7\nB+3=10"), "right in thinking"),                  # final line holds the gold sum
    (_record("c", no_answer=True, capped=True, thinking="A+7=7\nB+3=10"), "right in thinking"),
    (_record("d", no_answer=True, capped=True, thinking="A+7=7\nB+2=9"), "no answer, capped thinking"),
    (_record("e", no_answer=True, thinking="A+7=7"), "no answer, natural stop"),
    (_record("f", answer_capped=True, thinking="A+7=7"), "capped answer"),
    (_record("g", thinking="10 apples, minus 3 gives 7"), "wrong"),                 # gold only inside a calculation
    (_record("h", thinking=None), "wrong"),
    (_record("i", thinking="so x = \\boxed{\\frac{1}{2}} hmm", gold="0.5", benchmark="math500"), "right in thinking"),
    (_record("j", thinking="The answer is 1/3. Let me recheck", gold="\\frac{1}{2}", benchmark="math500"), "wrong"),
    (_record("k", thinking="The answer is (B), the others fail", gold="B", benchmark="gpqa-diamond"),
     "right in thinking"),
]


def test_every_record_gets_its_known_class():
    records = pd.DataFrame([r for r, _ in CASES])
    assert failures.classify(records).tolist() == [c for _, c in CASES]


def test_breakdown_shares_and_paired_differences_match_direct_counts():
    dense = [_record(f"p{i}", correct=i < 3, thinking="A+7=7\nB+3=10" if i == 3 else "A+1=1") for i in range(6)]
    pruned = [_record(f"p{i}", correct=i < 1, no_answer=i in (1, 2), capped=True, thinking="A+1=1",
                      recipe={"method": "wanda", "allocation": "owl", "sparsity": 0.5}) for i in range(6)]
    df = runs(pd.DataFrame(dense + pruned))
    table = failures.failure_breakdown(df).set_index("run")
    assert table.loc["dense", "correct"] == pytest.approx(3 / 6)
    assert table.loc["dense", "right in thinking"] == pytest.approx(1 / 6)
    assert table.loc["wanda/owl/0.5", "no answer, capped thinking"] == pytest.approx(2 / 6)
    assert table[list(failures.CLASSES)].sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    diffs = failures.failure_differences(df, n_boot=200).set_index("failure")
    assert diffs.loc["correct", "diff"] == pytest.approx(1 / 6 - 3 / 6)
    assert diffs.loc["no answer, capped thinking", "diff"] == pytest.approx(2 / 6)
    assert diffs.loc["right in thinking", "diff"] == pytest.approx(-1 / 6)
    assert diffs["diff"].sum() == pytest.approx(0.0)  # the shares of both runs sum to 1
