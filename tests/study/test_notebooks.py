"""The committed notebooks follow papermill's contract, and the smoke study runs every one of them.

Static checks: one `parameters` cell of typed, commented literals that papermill parses; outputs
cleared; kernel python3; no class defined in a notebook. End to end: studies/smoke.yaml on a tiny
model, then the artifacts each notebook promises are checked against independent computations.
"""
from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from tests._helpers_study import ROOT, smoke_run
from tts_prune import paths
from tts_prune.study import execute, grid

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_five_numbered_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == list(grid.NOTEBOOK_AXES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_contract(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    lines = [l for l in tagged[0].source.splitlines() if l.strip()]
    names = []
    for line in lines:
        node = ast.parse(line).body[0]
        assert isinstance(node, ast.AnnAssign), f"not a typed assignment: {line}"
        ast.literal_eval(node.value)  # a literal, nothing derived
        assert "  # " in line, f"no comment: {line}"
        names.append(node.target.id)
    assert set(papermill.inspect_notebook(str(path))) == set(names), "papermill must parse every parameter"
    assert "show_progress" in names
    assert set(grid.NOTEBOOK_AXES[path.stem]) <= set(names), "every grid axis is a parameter"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs cleared in git"
            tree = ast.parse(cell.source)
            assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)], "no class in a notebook"


def test_study_params_are_declared_by_some_notebook():
    declared = set().union(*(papermill.inspect_notebook(str(p)) for p in NOTEBOOKS))
    studies = sorted((ROOT / "studies").glob("*.yaml"))
    assert {"default", "smoke", "paper", "rehearsal", "qwen-profile"} <= {p.stem for p in studies}
    for path in studies:
        cfg = grid.load_study(path)
        passed = set(cfg.params).union(*(set(o.get("params", {})) for o in cfg.overrides.values()))
        assert passed <= declared, f"{path.name} passes parameters no notebook declares: {passed - declared}"


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def smoke():
    return smoke_run()


def _artifacts(smoke, notebook):
    return [Path(c.parameters["artifacts_dir"]) for c in smoke["cells"] if c.notebook == notebook]


def test_smoke_study_executed_every_cell(smoke):
    cells = smoke["cells"]
    assert {c.notebook for c in cells} == set(grid.NOTEBOOK_AXES)
    for cell in cells:
        assert cell.output.exists() and cell.html.exists() and cell.marker.exists(), cell.label
        figures = Path(cell.parameters["figures_dir"])
        pngs = sorted(figures.glob("*.png"))
        assert pngs, f"{cell.label}: no figure"
        assert all(p.with_suffix(".svg").exists() for p in pngs)


def test_calibration_profile_is_sane(smoke):
    from transformers import AutoConfig

    (folder,) = _artifacts(smoke, "01-calibration")
    profile = pd.read_csv(folder / "activation_profile.csv")
    config = AutoConfig.from_pretrained(smoke["model"])
    assert len(profile) == config.num_hidden_layers * 7  # q, k, v, o, gate, up, down per block
    assert (profile["norm_max"] >= profile["norm_median"]).all() and (profile["norm_median"] > 0).all()
    assert profile["outlier_ratio"].between(0, 1).all()


def test_allocations_keep_the_weighted_mean(smoke):
    from transformers import AutoModelForCausalLM

    from tts_prune.pruning.allocation import layer_weights

    (folder,) = _artifacts(smoke, "02-allocation")
    table = pd.read_csv(folder / "allocations.csv")
    weights = layer_weights(AutoModelForCausalLM.from_pretrained(smoke["model"]))
    target = smoke["study"].sparsities[0]
    assert set(table["allocation"]) == {"uniform", "owl", "alphapruning", "layerif", "layerif-block"}
    for _, part in table.groupby("allocation"):
        mean = (part.sort_values("layer")["sparsity"].to_numpy() * weights).sum() / sum(weights)
        assert abs(mean - target) < 1e-3


def test_pruned_model_on_disk_has_the_asserted_sparsity(smoke):
    import torch
    from transformers import AutoModelForCausalLM

    (cell,) = [c for c in smoke["cells"] if c.notebook == "03-pruning"]
    summary = json.loads((Path(cell.parameters["artifacts_dir"]) / "pruning.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(cell.parameters["model_out"])
    linears = [m.weight for layer in model.model.layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in linears) / sum(w.numel() for w in linears)
    assert abs(zeros - summary["achieved_sparsity"]) < 1e-6 and abs(zeros - cell.axes["sparsity"]) <= 1 / 64 + 1e-9  # per-row rounding, rows of 64
    assert summary["ppl_dense"] > 1 and summary["ppl_pruned"] > 1


def test_evaluation_records_cover_the_grid(smoke):
    import tts_prune

    records = tts_prune.load_results(Path(smoke["cells"][0].parameters["results_dir"]))
    cfg = smoke["study"]
    evaluated = [c for c in smoke["cells"] if c.notebook == "04-tts-scaling"]
    assert set(records["budget"]) == set(cfg.budgets)
    assert (records["thinking_tokens"] <= records["budget"]).all()
    assert records["correct"].isin([0, 1, True, False]).all()
    per_benchmark = len(cfg.budgets) * cfg.limit * len(cfg.seeds) * cfg.samples
    assert len(records) == sum(per_benchmark * len(c.parameters["benchmarks"]) for c in evaluated)
    for cell in evaluated:  # one cell per model variant evaluates every benchmark, each in its own figure folder
        assert cell.parameters["benchmarks"] == list(grid._benchmarks(cfg))
        figures = Path(cell.parameters["figures_dir"])
        for name in set(records["benchmark"]):
            assert (figures / grid.slug(name) / "thinking_tokens.png").exists(), (cell.label, name)


def test_no_gpqa_question_reaches_a_rendered_report(smoke):
    source = next((d / "gpqa_diamond.jsonl.gz" for d in (paths.BENCHMARK_DIR, paths.SHARED_BENCHMARK_DIR)
                   if (d / "gpqa_diamond.jsonl.gz").exists()), None)
    if source is None:
        pytest.skip("GPQA-Diamond file not present (make data)")
    assert any("gpqa-diamond" in c.parameters["benchmarks"] for c in smoke["cells"] if c.notebook == "04-tts-scaling")
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        questions = [json.loads(line)["Question"].strip() for line in handle if line.strip()]
    pages = [c.html.read_text(encoding="utf-8") for c in smoke["cells"]] + [c.output.read_text() for c in smoke["cells"]]
    for question in questions:
        snippet = question[:60]
        assert not any(snippet in page for page in pages), "a GPQA question was printed in a report"


def test_04_evaluates_the_model_03_saved_and_never_prunes(smoke, tmp_path, monkeypatch):
    import dataclasses
    import os
    import subprocess
    import sys

    import tts_prune

    called = tmp_path / "prune-was-called"
    trap = tmp_path / "trap"
    trap.mkdir()
    # Every Python started with this PYTHONPATH (the papermill kernel too) gets a pruning function that
    # leaves a file and raises: 04 must finish without touching it.
    (trap / "sitecustomize.py").write_text(
        "import pathlib\nimport tts_prune.pruning.driver as driver\n\n\ndef _trap(*args, **kwargs):\n"
        f"    pathlib.Path({str(called)!r}).write_text('called')\n"
        "    raise AssertionError('the pruning function was called')\n\n\ndriver.prune = _trap\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(trap), str(ROOT)]))
    control = subprocess.run([sys.executable, "-c", "import tts_prune; tts_prune.prune(None, None, None)"],
                             capture_output=True, text=True, timeout=300)
    assert "the pruning function was called" in control.stderr and called.exists()  # the trap works
    called.unlink()

    (source,) = [c for c in smoke["cells"] if c.notebook == "03-pruning"]
    (cell,) = [c for c in smoke["cells"] if c.notebook == "04-tts-scaling" and c.needs]
    assert cell.needs == (source.key,) and cell.parameters["pruned_model"] == source.parameters["model_out"]
    recipe = json.loads((Path(source.parameters["model_out"]) / "pruning_recipe.json").read_text())
    upstream = {source.key: execute.read_marker(source)["output"]}
    assert upstream[source.key] == recipe["pruned_fingerprint"]  # 03's output, as 04's marker records it
    assert execute.read_marker(cell)["fingerprint"]["upstream"] == upstream
    again = dataclasses.replace(cell, output=tmp_path / "reports" / "04.ipynb", parameters={
        **cell.parameters, "results_dir": str(tmp_path / "records"), "artifacts_dir": str(tmp_path / "artifacts"),
        "figures_dir": str(tmp_path / "figures")})
    execute.run_cell(again, show_progress=False, upstream=upstream)
    assert not called.exists()
    records = tts_prune.load_results(tmp_path / "records")
    assert len(records) == len(smoke["study"].budgets) * smoke["study"].limit * len(cell.parameters["benchmarks"])
    assert set(records["model_hash"]) == {recipe["pruned_fingerprint"]}  # the very weights 03 saved
    assert all(r["achieved_sparsity"] == recipe["global_sparsity"] and r["method"] == recipe["method"]
               for r in records["recipe"])


def test_04_refuses_a_pruned_model_saved_with_other_settings(smoke, tmp_path):
    from tts_prune.study.notebook import evaluated_model

    (source,) = [c for c in smoke["cells"] if c.notebook == "03-pruning"]
    folder = source.parameters["model_out"]
    with pytest.raises(ValueError, match=r"sparsity: wanted 0\.3, saved 0\.5; rerun 03-pruning"):
        evaluated_model(smoke["model"], folder, method="wanda", allocation="owl", sparsity=0.3)
    with pytest.raises(FileNotFoundError, match="no pruned model at .*run 03-pruning"):
        evaluated_model(smoke["model"], str(tmp_path / "nothing"), method="wanda", allocation="owl", sparsity=0.5)
