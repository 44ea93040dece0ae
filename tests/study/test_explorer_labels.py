"""Run labels: ShortGPT's label says what it removed; other runs keep method/allocation/sparsity."""
import pandas as pd

from tts_prune.report import explorer


def test_shortgpt_label_names_the_removed_fraction():
    records = pd.DataFrame({
        "recipe": [{"method": "shortgpt", "allocation": "uniform", "sparsity": 0.2, "removed_param_fraction": 6 / 28},
                   {"method": "wanda", "allocation": "owl", "sparsity": 0.1}, {}],
        "correct": [1, 0, 1], "problem_id": [1, 1, 1]})
    assert explorer.runs(records)["run"].tolist() == ["shortgpt/uniform/0.2 (removed 21.4%)", "wanda/owl/0.1", "dense"]
