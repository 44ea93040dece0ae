"""Cross-benchmark held-out choice of the allocation, against a hand-computed table."""
import pandas as pd
import pytest

from tts_prune.report.transfer import cross_benchmark

# accuracy per (allocation, benchmark) at the largest budget; the tuning choice and the oracle are read off by hand
ACC = {("uniform", "a"): 0.5, ("uniform", "b"): 0.4, ("uniform", "c"): 0.7,
       ("owl", "a"): 0.7, ("owl", "b"): 0.6, ("owl", "c"): 0.2,
       ("layerif", "a"): 0.6, ("layerif", "b"): 0.7, ("layerif", "c"): 0.5}


def _frame():
    rows = []
    for (allocation, benchmark), acc in ACC.items():
        for i in range(10):  # 10 problems, round(acc x 10) correct
            rows.append({"model": "m", "method": "wanda", "sparsity": 0.5, "allocation": allocation, "budget": 64,
                         "benchmark": benchmark, "problem_id": f"{benchmark}{i}", "seed": 0,
                         "correct": float(i < round(acc * 10))})
    rows += [{**rows[0], "budget": 8, "correct": 1.0}]  # a smaller budget is ignored
    return pd.DataFrame(rows)


def test_leave_one_benchmark_out():
    table = cross_benchmark(_frame()).set_index("held_out")
    # held out c: tuned on a, b -> uniform 0.45, owl 0.65, layerif 0.65 -> layerif (sorted first of the tie)
    assert table.loc["c", "chosen"] == "layerif" and table.loc["c", "oracle"] == "uniform"
    assert table.loc["c", "cost"] == pytest.approx(0.7 - 0.5)
    # held out a: tuned on b, c -> uniform 0.55, owl 0.4, layerif 0.6 -> layerif; oracle on a: owl
    assert table.loc["a", "chosen"] == "layerif" and table.loc["a", "cost"] == pytest.approx(0.1)
    assert table.loc["b", "cost"] >= 0


def test_fixed_tuning_benchmarks_and_errors():
    table = cross_benchmark(_frame(), tune_on=["a"])
    assert table["held_out"].tolist() == ["b", "c"] and set(table["chosen"]) == {"owl"}
    assert table.set_index("held_out").loc["c", "cost"] == pytest.approx(0.7 - 0.2)
    with pytest.raises(ValueError, match="tune_on"):
        cross_benchmark(_frame(), tune_on=["zzz"])
