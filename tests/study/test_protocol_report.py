"""05-report's grading-protocol comparison: pairing, accuracy per protocol, agreement and Cohen's kappa."""
import math

import pandas as pd
import pytest

from tts_prune.report import explorer
from tts_prune.study.grid import StudyConfig
from tts_prune.report.protocols import cohen_kappa, protocol_agreement


def _kappa_by_table(a, b):
    # Independent computation from the 2x2 contingency table (Cohen 1960): rows a, columns b.
    n = len(a)
    table = [[sum(1 for x, y in zip(a, b) if x == i and y == j) for j in (0, 1)] for i in (0, 1)]
    observed = (table[0][0] + table[1][1]) / n
    chance = sum((sum(table[i]) / n) * ((table[0][i] + table[1][i]) / n) for i in (0, 1))
    return (observed - chance) / (1 - chance)


def test_cohen_kappa_matches_the_contingency_table():
    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx(_kappa_by_table(a, b), abs=1e-12)
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == 1.0
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))          # both constant: chance agreement is certain
    with pytest.raises(ValueError, match="length"):
        cohen_kappa([1], [1, 0])


def _records(protocol, verdicts, run_recipe):
    grading = {"protocol": protocol} if protocol else {"grade_thinking": False}
    return [{"model": "m", "benchmark": "aime24", "recipe": run_recipe, "problem_id": f"p{i}", "budget": 64,
             "seed": 0, "correct": v, "grading": grading} for i, v in enumerate(verdicts)]


def test_agreement_per_run_pairs_the_same_responses():
    kit = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    harness = [1, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    wanda = {"method": "wanda", "allocation": "uniform", "sparsity": 0.2}
    records = pd.DataFrame(_records("kit", kit, {}) + _records("s1-harness", harness, {})
                           + _records("kit", [1, 0], wanda)              # a run graded under one protocol only
                           + _records(None, [0] * 10, {}))               # pre-protocol records: kit-legacy
    df = explorer.runs(records)
    assert sorted(df["protocol"].unique()) == ["kit", "kit-legacy", "s1-harness"]
    table = protocol_agreement(df)
    assert list(table["run"]) == ["dense"]                               # only runs with both protocols
    row = table.iloc[0]
    assert row["pairs"] == 10 and row["acc_kit"] == 0.6 and row["acc_s1-harness"] == 0.5
    assert row["agree"] == 0.7 and row["kappa"] == pytest.approx(_kappa_by_table(kit, harness))
    assert (row["only_kit"], row["only_s1-harness"]) == (2, 1)
    # one protocol's records only: what every other report section reads (never both pooled)
    only_kit = explorer.runs(records, protocol="kit")
    assert set(only_kit["protocol"]) == {"kit"} and len(only_kit) == 12
    with pytest.raises(ValueError, match="'s2'"):
        explorer.runs(records, protocol="s2")
    assert protocol_agreement(explorer.runs(records, protocol="kit")).empty


def test_study_grading_keys_pass_through_and_are_checked():
    cfg = StudyConfig(name="x", models=("m",), grading=("kit", "s1-harness"),
                      judge={"base_url": "http://127.0.0.1:8000/v1", "model": "gpt-4o-mini"})
    assert cfg.grading == ("kit", "s1-harness")
    with pytest.raises(ValueError, match="s2-harness"):
        StudyConfig(name="x", models=("m",), grading=("s2-harness",))
    with pytest.raises(ValueError, match="base_url"):
        StudyConfig(name="x", models=("m",), judge={"model": "gpt-4o-mini"})
