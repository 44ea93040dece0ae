"""studies/paper.yaml as the authors ran it, and the grid keys it needs: ShortGPT by block count
(`shortgpt_layers`), per-method parameters (`method_params`: ShortGPT's own calibration) and `max_gen_tokens`."""
from itertools import product
from pathlib import Path

import papermill
import pytest

from tts_prune.study import grid

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("simplescaling/s1.1-7B", "Qwen/Qwen3-8B")


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    study = grid.load_study(ROOT / "studies" / "paper.yaml")
    return grid.expand(study, reports=tmp_path_factory.mktemp("r"), results=tmp_path_factory.mktemp("s"))


def test_paper_grid_counts_match_an_independent_enumeration(cells):
    unstructured = list(product(["magnitude", "wanda"], ["uniform", "owl", "layerif"], [0.1, 0.2]))
    shortgpt = [("shortgpt", "uniform", 0.0, n) for n in (1, 2, 3)]  # the authors' PRUNE_LAYERS, no 10% / 20%
    recipes = [(*r, None) for r in unstructured] + shortgpt
    pruning = [c for c in cells if c.notebook == "03-pruning"]
    tts = [c for c in cells if c.notebook == "04-tts-scaling"]
    assert len(pruning) == len(MODELS) * len(recipes) == 30
    assert len(tts) == len(MODELS) * (len(recipes) + 1) == 32  # + dense: one cell per model variant, benchmarks inside
    assert {tuple(c.parameters["benchmarks"]) for c in tts} == {("math500", "aime24", "amc23", "gpqa-diamond")}
    got = {(c.axes["method"], c.axes["allocation"], c.axes["sparsity"], c.axes.get("shortgpt_layers")) for c in pruning}
    assert got == set(recipes)
    assert len({c.output for c in cells}) == len(cells)


def test_paper_grid_carries_the_authors_hyper_parameters(cells):
    tts = [c for c in cells if c.notebook == "04-tts-scaling"]
    for cell in [c for c in cells if c.notebook in ("03-pruning", "04-tts-scaling") and c.axes["method"] != "dense"]:
        p = cell.parameters
        assert (p["owl_m"], p["owl_lambda"], p["dtype"]) == (7, 0.08, "bfloat16")
        if cell.axes["method"] == "shortgpt":
            assert (p["calibration"], p["nsamples"], p["seqlen"]) == ("shortgpt", 100, 1024)
            assert p["shortgpt_layers"] == cell.axes["shortgpt_layers"] and p["sparsity"] == 0.0
        else:
            assert (p["calibration"], p["nsamples"], p["seqlen"], p["seed"]) == ("allenai/c4", 128, 2048, 0)
            assert "shortgpt_layers" not in p
    assert {tuple(c.parameters["budgets"]) for c in tts} == {(512, 1024, 2048, 4096, 8192)}  # Qwen3 too: no 0
    assert {c.parameters["max_gen_tokens"] for c in tts} == {32768}
    assert {c.parameters["temperature"] for c in tts} == {1.0} and {tuple(c.parameters["seeds"]) for c in tts} == {(7, 11, 42)}


def test_each_shortgpt_04_cell_reads_the_03_cell_of_its_own_block_count(cells):
    by_key = {c.key: c for c in cells}
    short = [c for c in cells if c.notebook == "04-tts-scaling" and c.axes["method"] == "shortgpt"]
    assert len(short) == len(MODELS) * 3
    for cell in short:
        (source,) = cell.needs
        producer = by_key[source]
        assert producer.axes == cell.axes
        assert cell.parameters["pruned_model"] == producer.parameters["model_out"]
        assert f"shortgpt_layers={cell.axes['shortgpt_layers']}" in producer.output.name


def test_per_method_parameters_are_declared_by_the_notebooks_they_reach():
    study = grid.load_study(ROOT / "studies" / "paper.yaml")
    for notebook in ("03-pruning", "04-tts-scaling"):
        declared = set(papermill.inspect_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb")))
        for keys in study.method_params.values():
            assert set(keys) <= declared, (notebook, set(keys) - declared)
        assert "shortgpt_layers" in declared


def test_grid_keys_reject_bad_values_with_the_fix():
    base = dict(name="t", models=("m",), methods=("wanda", "shortgpt"))
    with pytest.raises(ValueError, match=r"shortgpt_layers=\[0\].*whole numbers of blocks >= 1"):
        grid.StudyConfig(**base, shortgpt_layers=(0,))
    with pytest.raises(ValueError, match="without shortgpt in methods"):
        grid.StudyConfig(**{**base, "methods": ("wanda",)}, shortgpt_layers=(1,))
    with pytest.raises(ValueError, match=r"method_params\['shortgpt'\].*other than the axes"):
        grid.StudyConfig(**base, method_params={"shortgpt": {"sparsity": 0.1}})
    with pytest.raises(ValueError, match="max_gen_tokens=0.*positive token count or null"):
        grid.StudyConfig(**base, max_gen_tokens=0)


def test_a_varied_calibration_axis_wins_over_method_params(tmp_path):
    cfg = grid.StudyConfig(name="t", models=("m",), methods=("shortgpt",), sparsities=(0.2,), benchmarks=("gsm8k",),
                           calibration=("gsm8k", "builtin"), method_params={"shortgpt": {"calibration": "shortgpt",
                                                                                         "nsamples": 100}})
    pruning = [c for c in grid.expand(cfg, reports=tmp_path) if c.notebook == "03-pruning"]
    assert sorted((c.parameters["calibration"], c.parameters["nsamples"]) for c in pruning) == [
        ("builtin", 100), ("gsm8k", 100)]


def test_run_labels_of_shortgpt_by_block_count_and_methods_with_their_own_calibration():
    import pandas as pd

    from tts_prune.report import explorer

    def rec(recipe):
        return {"model": "m", "benchmark": "b", "recipe": recipe, "problem_id": "p", "seed": 7, "budget": 512,
                "correct": True}

    records = pd.DataFrame([
        rec({"method": "dense", "allocation": "uniform", "sparsity": 0.0}),
        rec({"method": "wanda", "allocation": "uniform", "sparsity": 0.2, "calibration": "allenai/c4"}),
        rec({"method": "shortgpt", "allocation": "uniform", "sparsity": None, "shortgpt_layers": 2,
             "removed_param_fraction": 2 / 28, "calibration": "shortgpt"})])
    df = explorer.runs(records)
    assert df["run"].tolist() == ["dense", "wanda/uniform/0.2", "shortgpt/-2L (7.1% of decoder)"]
    assert df["sparsity"].tolist() == [0.0, 0.2, round(2 / 28, 4)]  # placed at the share really removed
