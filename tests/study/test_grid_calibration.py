"""Calibration source and calibration seed as study axes (answers to the referee: variance from pruning)."""
from itertools import product

import pandas as pd
import pytest

from tts_prune.study import grid
from tts_prune.report import explorer


def _config(**changes):
    base = dict(name="t", models=("m",), methods=("wanda", "shortgpt"), allocations=("uniform", "owl"),
                sparsities=(0.2,), benchmarks=("toy-reasoning",), budgets=(8, 16))
    return grid.StudyConfig(**{**base, **grid._coerce(changes)})


def test_one_calibration_value_adds_no_axis(tmp_path):
    cells = grid.expand(_config(calibration="gsm8k"), reports=tmp_path)
    assert all("calibration" not in c.axes and "calibration_seed" not in c.axes for c in cells)
    pruning = [c for c in cells if c.notebook == "03-pruning"]
    assert all(c.parameters["calibration"] == "gsm8k" and c.parameters["seed"] == 0 for c in pruning)
    assert pruning[0].output.name == "model=m__method=wanda__allocation=uniform__sparsity=0.2.ipynb"


def test_calibration_and_seed_axes_multiply_pruning_cells_only(tmp_path):
    cfg = _config(calibration=["gsm8k", "self-traces"], calibration_seeds=[0, 3])
    cells = grid.expand(cfg, reports=tmp_path)
    recipes = [("wanda", "uniform"), ("wanda", "owl"), ("shortgpt", "uniform")]
    pruning = [c for c in cells if c.notebook == "03-pruning"]
    tts = [c for c in cells if c.notebook == "04-tts-scaling"]
    assert len(pruning) == len(recipes) * 2 * 2
    assert len([c for c in tts if c.axes["method"] == "dense"]) == 1  # the dense baseline is not calibrated
    assert len(tts) == 1 + len(recipes) * 2 * 2
    expected = {(m, a, cal, s) for (m, a), cal, s in product(recipes, ["gsm8k", "self-traces"], [0, 3])}
    assert {(c.axes["method"], c.axes["allocation"], c.parameters["calibration"], c.parameters["calibration_seed"])
            for c in tts if c.axes["method"] != "dense"} == expected
    assert all(c.parameters["seed"] == c.axes["calibration_seed"] for c in pruning)
    assert len({c.output for c in cells}) == len(cells)
    assert {c.notebook for c in cells if "calibration" in c.axes} == {"03-pruning", "04-tts-scaling"}
    with pytest.raises(ValueError, match="calibration_seeds"):
        _config(calibration_seeds=[])


def test_run_labels_name_the_calibration_only_when_it_varies():
    def rec(method, calibration, seed=0):
        recipe = {"method": method, "allocation": "uniform", "sparsity": 0.2 if method != "dense" else 0.0}
        if method != "dense":
            recipe.update(calibration=calibration, calibration_seed=seed)
        return {"recipe": recipe, "problem_id": "p", "seed": 0, "budget": 8, "correct": True}

    one = explorer.runs(pd.DataFrame([rec("dense", None), rec("wanda", "gsm8k"), rec("wanda", "gsm8k", 1)]))
    assert sorted(set(one["run"])) == ["dense", "wanda/uniform/0.2"]
    assert one["calibration_seed"].tolist() == [0, 0, 1]
    two = explorer.runs(pd.DataFrame([rec("dense", None), rec("wanda", "gsm8k"), rec("wanda", "self-traces")]))
    assert two["run"].tolist() == ["dense", "wanda/uniform/0.2/gsm8k", "wanda/uniform/0.2/self-traces"]


def test_calibration_methods_limit_the_axes_to_some_methods(tmp_path):
    cfg = _config(calibration=["gsm8k", "self-traces"], calibration_methods=["wanda"])
    tts = [c for c in grid.expand(cfg, reports=tmp_path) if c.notebook == "04-tts-scaling" and c.axes["method"] != "dense"]
    assert sorted((c.axes["method"], c.axes["allocation"], c.axes.get("calibration")) for c in tts) == [
        ("shortgpt", "uniform", None), ("wanda", "owl", "gsm8k"), ("wanda", "owl", "self-traces"),
        ("wanda", "uniform", "gsm8k"), ("wanda", "uniform", "self-traces")]
    assert [c.parameters["calibration"] for c in tts if c.axes["method"] == "shortgpt"] == ["gsm8k"]


def test_each_calibrated_04_cell_reads_the_03_cell_of_its_own_calibration(tmp_path):
    cfg = _config(calibration=["gsm8k", "self-traces"], calibration_seeds=[0, 1])
    cells = grid.expand(cfg, reports=tmp_path)
    by_key = {c.key: c for c in cells}
    pruned = [c for c in cells if c.notebook == "04-tts-scaling" and c.axes["method"] != "dense"]
    assert len(pruned) == 3 * 2 * 2
    for cell in pruned:
        (source,) = [by_key[k] for k in cell.needs]
        assert source.notebook == "03-pruning"
        for key in ("method", "allocation", "sparsity", "calibration", "calibration_seed"):
            assert source.axes[key] == cell.axes[key]
        assert cell.parameters["pruned_model"] == source.parameters["model_out"]
        assert source.parameters["benchmark"] == "toy-reasoning" and source.parameters["seed"] == cell.axes["calibration_seed"]
    assert len({c.parameters["pruned_model"] for c in pruned}) == len(pruned)
