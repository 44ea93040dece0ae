"""The study runner: grid expansion, collision-free paths, skip on rerun, failure stops, HTML and index.

Grid logic is checked against independent counts; execution uses trivial notebooks (a kernel that
only writes its parameters to JSON) so it takes seconds.
"""
from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import nbformat
import pytest
import yaml

from tts_prune import paths
from tts_prune.study import execute, grid, runner
from tts_prune.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _config(**changes):
    base = dict(name="t", models=("m1", "m2"), methods=("magnitude", "wanda", "shortgpt"),
                allocations=("uniform", "owl"), sparsities=(0.1, 0.2), benchmarks=("gsm8k", "toy-reasoning"),
                budgets=(8, 16))
    return grid.StudyConfig(**{**base, **changes})


def test_expand_counts_match_an_independent_enumeration(tmp_path):
    cfg = _config()
    cells = grid.expand(cfg, reports=tmp_path / "r", results=tmp_path / "s", figures=tmp_path / "f")
    by_nb = {nb: [c for c in cells if c.notebook == nb] for nb in grid.NOTEBOOK_AXES}
    # shortgpt runs with uniform allocation only: (2 unstructured x 2 allocations + 1) x 2 sparsities per model
    recipes = [(m, a, s) for m, a, s in product(cfg.methods, cfg.allocations, cfg.sparsities)
               if not (m == "shortgpt" and a != "uniform")]
    assert len(recipes) == 10
    assert len(by_nb["01-calibration"]) == 2
    assert len(by_nb["02-allocation"]) == 2 * 2
    assert len(by_nb["03-pruning"]) == 2 * len(recipes)
    assert len(by_nb["04-tts-scaling"]) == 2 * (len(recipes) + 1)  # + dense, per model: one cell per model variant
    assert len(by_nb["05-report"]) == 1
    dense = [c for c in by_nb["04-tts-scaling"] if c.axes["method"] == "dense"]
    assert len(dense) == 2 and all(c.axes["sparsity"] == 0.0 for c in dense)
    # every benchmark is evaluated inside each 04 cell (one model load, one engine), in the study's order
    assert all(c.parameters["benchmarks"] == list(cfg.benchmarks) and "benchmark" not in c.axes
               for c in by_nb["04-tts-scaling"])
    assert cells[-1].notebook == "05-report"  # the report runs after every evaluation


def test_every_axis_value_is_in_the_path_and_paths_are_unique(tmp_path):
    cells = grid.expand(_config(), reports=tmp_path / "r", results=tmp_path / "s", figures=tmp_path / "f")
    assert len({c.output for c in cells}) == len(cells)
    assert len({c.parameters["figures_dir"] for c in cells}) == len(cells)
    assert len({c.parameters["artifacts_dir"] for c in cells}) == len(cells)
    for cell in cells:
        assert cell.output.is_relative_to(tmp_path / "r" / "t" / cell.notebook)
        for key, value in cell.axes.items():
            assert f"{key}={grid.slug(value)}" in cell.output.name
        assert cell.html == cell.output.with_suffix(".html")


def test_cells_form_the_dag_that_prunes_once(tmp_path):
    cfg = _config()
    cells = grid.expand(cfg, reports=tmp_path / "r", results=tmp_path / "s", figures=tmp_path / "f",
                        models_out=tmp_path / "m")
    by_key = {c.key: c for c in cells}
    assert len(by_key) == len(cells)
    position = {c.key: i for i, c in enumerate(cells)}
    for cell in cells:
        assert all(position[k] < position[cell.key] for k in cell.needs), "the walk order is a topological order"
        if cell.notebook in ("01-calibration", "02-allocation", "03-pruning"):
            assert cell.needs == ()
        if cell.notebook == "03-pruning":
            assert cell.parameters["save_model"] is True
    for cell in (c for c in cells if c.notebook == "04-tts-scaling"):
        if cell.axes["method"] == "dense":
            assert cell.needs == () and "pruned_model" not in cell.parameters
            continue
        (needed,) = cell.needs
        source = by_key[needed]
        assert source.notebook == "03-pruning"
        assert {k: source.axes[k] for k in source.axes} == {k: cell.axes[k] for k in source.axes}
        assert cell.parameters["pruned_model"] == source.parameters["model_out"]
        assert Path(source.parameters["model_out"]).is_relative_to(tmp_path / "m")
    evaluated = [c for c in cells if c.notebook == "04-tts-scaling"]
    pruned = [c for c in cells if c.notebook == "03-pruning"]
    readers = {k: sum(k in c.needs for c in evaluated) for k in (c.key for c in pruned)}
    assert set(readers.values()) == {1}  # each pruned model is read by one 04 cell, which runs every benchmark
    assert all(c.parameters["benchmarks"] == list(cfg.benchmarks) for c in evaluated)
    (report,) = [c for c in cells if c.notebook == "05-report"]
    assert set(report.needs) == {c.key for c in pruned + evaluated}


def test_colliding_model_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="would both write"):
        grid.expand(_config(models=("org/model", "org-model")), reports=tmp_path)


def test_slug_keeps_long_values_distinct():
    a, b = "/tmp/" + "x" * 80 + "/model-a", "/tmp/" + "x" * 80 + "/model-b"
    assert grid.slug(a) != grid.slug(b) and len(grid.slug(a)) <= 48
    assert grid.slug("Qwen/Qwen3-8B") == "Qwen-Qwen3-8B"


def test_overrides_and_tts_methods(tmp_path):
    cfg = _config(models=("toy", "real"), tts_methods=("wanda",),
                  overrides={"toy": {"notebooks": ["04-tts-scaling"], "sparsities": [0.5]},
                             "real": {"notebooks": ["03-pruning", "04-tts-scaling"], "tts_methods": []}})
    cells = grid.expand(cfg, reports=tmp_path)
    toy = [c for c in cells if c.axes.get("model") == "toy"]
    assert {c.axes["method"] for c in toy if c.notebook == "04-tts-scaling"} == {"dense", "wanda"}
    assert {c.axes["sparsity"] for c in toy if c.axes["method"] != "dense"} == {0.5}
    # 03-pruning is not listed for the toy, yet its two evaluated recipes (wanda x uniform/owl) are pruned there
    assert sorted((c.axes["method"], c.axes["allocation"]) for c in toy if c.notebook == "03-pruning") == \
        [("wanda", "owl"), ("wanda", "uniform")]
    real = [c for c in cells if c.axes.get("model") == "real" and c.notebook == "04-tts-scaling"]
    assert {c.axes["method"] for c in real} == {"dense"}


def test_optional_benchmarks_only_when_their_file_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BENCHMARK_DIR", tmp_path / "b")
    monkeypatch.setattr(paths, "SHARED_BENCHMARK_DIR", tmp_path / "shared")
    cfg = _config(models=("m",), notebooks=("04-tts-scaling",), benchmarks=("toy-reasoning",),
                  optional_benchmarks=("aime24",))

    def benchmarks():
        cells = [c for c in grid.expand(cfg, reports=tmp_path) if c.notebook == "04-tts-scaling"]
        assert len(cells) == 1 + (2 * 2 + 1) * 2  # dense + one per recipe (see above): never one per benchmark
        (values,) = {tuple(c.parameters["benchmarks"]) for c in cells}
        return values

    assert benchmarks() == ("toy-reasoning",)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "aime24.jsonl").write_text("{}\n")
    assert benchmarks() == ("toy-reasoning", "aime24")
    assert not [c for c in grid.expand(_config(models=("m",), benchmarks=()), reports=tmp_path)
                if c.notebook == "04-tts-scaling"]  # no benchmark: nothing to evaluate


def test_study_files_load_and_bad_ones_explain_themselves(tmp_path):
    for name in ("default", "smoke", "paper"):
        cfg = grid.load_study(ROOT / "studies" / f"{name}.yaml")
        assert cfg.name == name and grid.expand(cfg, reports=tmp_path)
    paper = grid.load_study(ROOT / "studies" / "paper.yaml")
    assert paper.models == ("simplescaling/s1.1-7B", "Qwen/Qwen3-8B") and paper.seeds == (7, 11, 42)
    assert paper.budgets == (512, 1024, 2048, 4096, 8192) and paper.sparsities == (0.1, 0.2)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": ["m"], "sparsity": [0.2]}))
    with pytest.raises(ValueError, match=r"unknown keys \['sparsity'\].*allowed"):
        grid.load_study(bad)
    with pytest.raises(ValueError, match="sparsity 1.5"):
        _config(sparsities=(1.5,))
    with pytest.raises(ValueError, match="notebook '06-x' is unknown"):
        _config(notebooks=("06-x",))
    with pytest.raises(ValueError, match="override"):
        _config(overrides={"not-listed": {"limit": 1}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        grid.load_study(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------------ execution
_PARAMS = '''model: str = "m"  # model
method: str = "wanda"  # method
allocation: str = "uniform"  # allocation
sparsity: float = 0.2  # sparsity
budgets: list = [1]  # budgets
artifacts_dir: str = ""  # where to write'''
_BODY = '''import json, pathlib
assert method != "boom", "this cell fails on purpose"
pathlib.Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(artifacts_dir, "params.json").write_text(json.dumps(
    dict(model=model, method=method, allocation=allocation, sparsity=sparsity, budgets=budgets)))
print("wrote", method)'''


def _trivial_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(_PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(_BODY)]
    nbformat.write(nb, folder / "03-pruning.ipynb")
    nbformat.write(nb, folder / "05-report.ipynb")
    return folder


def _study_file(tmp_path, methods, notebooks=("03-pruning",)) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "models": ["m"], "notebooks": list(notebooks),
                                    "methods": methods, "sparsities": [0.3], "budgets": [4, 8]}))
    return path


def test_run_writes_notebooks_html_index_and_skips_done_cells(tmp_path):
    notebooks = _trivial_notebooks(tmp_path / "nb")
    dirs = dict(reports=tmp_path / "reports", results=tmp_path / "results", figures=tmp_path / "figs")
    cfg = grid.load_study(_study_file(tmp_path, ["magnitude", "wanda"]))
    cells = runner.run_study(cfg, notebooks=notebooks, show_progress=False, **dirs)
    assert len(cells) == 2
    for cell in cells:
        written = json.loads((Path(cell.parameters["artifacts_dir"]) / "params.json").read_text())
        assert written == {"model": "m", "method": cell.axes["method"], "allocation": "uniform", "sparsity": 0.3,
                           "budgets": [4, 8]}
        assert cell.output.exists() and cell.html.exists() and execute.is_done(cell, notebooks / "03-pruning.ipynb")
        assert f"wrote {cell.axes['method']}" in cell.html.read_text()
    index = (tmp_path / "reports" / "index.html").read_text()
    for cell in cells:
        assert cell.html.relative_to(tmp_path / "reports").as_posix() in index
    assert nbformat.read(notebooks / "03-pruning.ipynb", as_version=4).cells[1].outputs == []  # input untouched

    stamps = [c.output.stat().st_mtime_ns for c in cells]
    runner.run_study(cfg, notebooks=notebooks, show_progress=False, **dirs)
    assert [c.output.stat().st_mtime_ns for c in cells] == stamps  # done cells are skipped
    runner.run_study(cfg, notebooks=notebooks, show_progress=True, **dirs)
    assert [c.output.stat().st_mtime_ns for c in cells] == stamps  # a progress bar is not a new computation
    changed = grid.load_study(_study_file(tmp_path, ["magnitude", "wanda"]), budgets=[4, 16])
    runner.run_study(changed, notebooks=notebooks, show_progress=False, **dirs)
    assert all(c.output.stat().st_mtime_ns != s for c, s in zip(cells, stamps))  # new parameters: run again


def test_failing_cell_stops_the_run_with_papermills_error(tmp_path, capsys):
    notebooks = _trivial_notebooks(tmp_path / "nb")
    path = _study_file(tmp_path, ["boom", "wanda"])
    code = main(["study", "--study", str(path), "--notebooks", str(notebooks), "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "a notebook failed" in err and "this cell fails on purpose" in err
    failed = tmp_path / "o" / "reports" / "tiny" / "03-pruning" / "model=m__method=boom__allocation=uniform__sparsity=0.3.ipynb"
    assert failed.exists() and not failed.with_suffix(".done.json").exists()  # papermill saved it; not marked done
    assert not list((tmp_path / "o" / "reports" / "tiny" / "03-pruning").glob("*method=wanda*"))  # the run stopped
    assert (tmp_path / "o" / "reports" / "index.html").exists()


def test_report_reruns_after_new_cells_and_only_then(tmp_path):
    notebooks = _trivial_notebooks(tmp_path / "nb")
    dirs = dict(reports=tmp_path / "reports", results=tmp_path / "results", figures=tmp_path / "figs")

    def run(methods):
        path = _study_file(tmp_path, methods, notebooks=("03-pruning", "05-report"))
        cells = runner.run_study(grid.load_study(path), notebooks=notebooks, show_progress=False, **dirs)
        return {c.output: c.output.stat().st_mtime_ns for c in cells}, cells[-1]

    first, report = run(["wanda"])
    assert report.notebook == "05-report"
    again, _ = run(["wanda"])
    assert again == first  # nothing new: the report is not redone
    more, _ = run(["wanda", "magnitude"])
    assert more[report.output] != first[report.output]  # a new cell ran: the report reads the store again


def test_allocations_are_checked_and_both_layerifs_known():
    assert _config(allocations=("layerif", "layerif-block")).allocations == ("layerif", "layerif-block")
    with pytest.raises(ValueError, match=r"allocations=\['layerif_paper'\].*'layerif-block'"):
        _config(allocations=("layerif_paper",))
