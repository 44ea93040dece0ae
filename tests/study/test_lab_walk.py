"""The lab walk: 03-pruning then 04-tts-scaling with their default parameters, as a user runs them in JupyterLab.

03 saves under ``models/pruned/lab/<model>/<recipe slug>`` and 04 reads it there only if the recipe its own
parameters name (``lab_recipe``) equals the saved one: the two parameter cells must agree on every recipe
parameter (checked statically), and the walk must run for each embedded model (papermill, smallest settings).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import papermill
import pytest

from tests._helpers_study import ROOT
from tts_prune.models.embedded import EMBEDDED
from tts_prune.pruning.recipe import notebook_recipe, recipe_parameters

PRUNING, SCALING = ROOT / "notebooks" / "03-pruning.ipynb", ROOT / "notebooks" / "04-tts-scaling.ipynb"


def _defaults(path: Path) -> dict:
    return {name: ast.literal_eval(p["default"]) for name, p in papermill.inspect_notebook(str(path)).items()}


def _recipe_defaults(defaults: dict) -> dict:  # calibration_seed is 04's name of 03's seed
    return {("seed" if k == "calibration_seed" else k): v for k, v in defaults.items() if k in recipe_parameters()}


def test_03_and_04_name_the_same_recipe_by_default():
    pruning, scaling = _defaults(PRUNING), _defaults(SCALING)
    assert pruning["model"] == scaling["model"], "the lab folder names the model: the defaults must agree"
    assert _recipe_defaults(pruning) == _recipe_defaults(scaling)  # every recipe parameter, in both, equal
    assert {"method", "allocation", "sparsity", "calibration", "seed", "owl_lambda"} <= set(_recipe_defaults(pruning))
    assert notebook_recipe(pruning) == notebook_recipe(scaling)
    assert notebook_recipe({**scaling, "method": "dense"}).is_dense


def _built(name: str) -> bool:  # never build a model here (the toy reasoner trains for half an hour)
    return any((ROOT / "models" / "embedded" / name).glob("*.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(EMBEDDED))
def test_03_then_04_with_their_defaults(model, tmp_path, monkeypatch):
    if not _built(model):
        pytest.skip(f"embedded model {model} is not built here (make model builds the toy reasoner, make qwen the Qwen2.5)")
    home = tmp_path / "home"  # TTS_PRUNE_HOME: the lab's default folders, out of the checkout
    (home / "models").mkdir(parents=True)
    (home / "models" / "embedded").symlink_to((ROOT / "models" / "embedded").resolve())
    (home / "data").mkdir()
    (home / "data" / "benchmarks").symlink_to((ROOT / "data" / "benchmarks").resolve())
    monkeypatch.setenv("TTS_PRUNE_HOME", str(home))
    # The smallest settings, the same in both notebooks (as a user would change both parameter cells)
    same = {"model": model, "nsamples": 4, "seqlen": 32, "layerif_samples": 4, "threads": 1, "show_progress": False}
    papermill.execute_notebook(str(PRUNING), str(tmp_path / "03.ipynb"), kernel_name="python3", progress_bar=False,
                               parameters={**same, "ppl_tokens": 128, "ppl_seqlen": 64})
    saved = list((home / "models" / "pruned" / "lab").glob("*/*/pruning_recipe.json"))
    assert [p.parent.parent.name for p in saved] == [model]  # lab/<model>/<slug>
    papermill.execute_notebook(str(SCALING), str(tmp_path / "04.ipynb"), kernel_name="python3", progress_bar=False,
                               parameters={**same, "budgets": [8], "limit": 1, "answer_tokens": 8, "batch_size": 1,
                                           "divergence_traces": 0})
    summaries = list((home / "results" / "lab" / "artifacts" / "04-tts-scaling").glob("*/summary.json"))
    recipe = json.loads(summaries[0].read_text())["recipe"]
    on_disk = json.loads(saved[0].read_text())
    assert recipe["achieved_sparsity"] == on_disk["global_sparsity"] and recipe["method"] == on_disk["method"]
