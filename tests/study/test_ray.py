"""``--executor ray`` on a local 2-CPU Ray cluster: cells run at once, in dependency order, and give
the sequential executor's results; a failing cell names itself and the cells that finished stay done.

One cluster (``num_cpus=2``, no dashboard, a 100 MB object store) serves the module and is shut down
after it. Ray is a declared dependency (the ``cluster`` extra, installed by ``make setup``): a missing
Ray fails here instead of skipping.
"""
from __future__ import annotations


import pytest
import ray
import yaml

from tests._helpers_study import assert_same_results, overlap, smoke_run
from tests.study._trivial import trivial_notebooks
from tts_prune.cli import main
from tts_prune.study import execute, grid, runner
from tts_prune.study.ray_executor import RayExecutor


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()


def test_smoke_study_on_ray_overlaps_cells_and_equals_the_sequential_run(cluster, tmp_path):
    assert cluster["CPU"] == 2
    sequential = smoke_run()
    dirs = dict(reports=tmp_path / "reports", results=tmp_path / "results", figures=tmp_path / "figures",
                models_out=tmp_path / "models")
    cells = runner.run_study(sequential["study"], show_progress=False, executor="ray", **dirs)
    markers = {c.key: execute.read_marker(c) for c in cells}
    assert all(m is not None for m in markers.values())
    assert [c.key for c in cells] == [c.key for c in sequential["cells"]]

    # Two cells ran at once, never more than the cluster's two CPUs, and none before the cells it needs.
    keys = list(markers)
    assert any(overlap(markers[a], markers[b]) for i, a in enumerate(keys) for b in keys[i + 1:])
    for moment in (m["started"] for m in markers.values()):
        assert sum(m["started"] <= moment < m["finished"] for m in markers.values()) <= 2
    for cell in cells:
        assert all(markers[k]["finished"] <= markers[cell.key]["started"] for k in cell.needs), cell.key

    assert_same_results(tmp_path, sequential)
    (pruner,) = [c for c in cells if c.notebook == "03-pruning"]
    assert markers[pruner.key]["output"] == execute.read_marker(
        next(c for c in sequential["cells"] if c.key == pruner.key))["output"]  # the saved weights' fingerprint
    index = (tmp_path / "reports" / "index.html").read_text()
    assert all(c.html.exists() and c.html.relative_to(tmp_path / "reports").as_posix() in index for c in cells)


def test_a_failing_cell_on_ray_is_named_and_the_running_ones_finish(cluster, tmp_path, capsys):
    notebooks = trivial_notebooks(tmp_path / "nb")
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump({"name": "fail", "models": ["m"], "notebooks": ["04-tts-scaling"],
                                    "methods": ["boom", "wanda", "magnitude"], "sparsities": [0.5],
                                    "benchmarks": ["b1"], "budgets": [4]}))
    out = tmp_path / "o"
    (out / "models").mkdir(parents=True)
    (out / "models" / "FAIL-boom").touch()
    code = main(["study", "--study", str(path), "--notebooks", str(notebooks), "--out", str(out),
                 "--executor", "ray", "--cpus-per-cell", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "this cell fails on purpose" in err and "cell 03-pruning [model=m, method=boom" in err
    assert "running: 03-pruning model=m, method=boom" in err  # the progress bar names the running cells
    cells = grid.expand(grid.load_study(path), reports=out / "reports", results=out / "results",
                        figures=out / "figures", models_out=out / "models")
    by = {(c.notebook, c.axes["method"]): c for c in cells}
    assert by[("03-pruning", "wanda")].marker.exists()  # ran beside the failing cell and finished: done
    assert not by[("03-pruning", "boom")].marker.exists()
    assert not by[("04-tts-scaling", "boom")].output.exists()  # what needs the failed cell never started


def test_cells_ask_the_cluster_only_for_what_it_has(cluster, tmp_path):
    cells = grid.expand(grid.StudyConfig(name="r", models=("m",), methods=("wanda",), benchmarks=("gsm8k",)),
                        reports=tmp_path)
    evaluation = next(c for c in cells if c.notebook == "04-tts-scaling")
    report = next(c for c in cells if c.notebook == "05-report")
    with RayExecutor(tmp_path, gpus_per_cell=1) as pool:
        assert pool.has_room(report)  # the report asks for no GPU
        with pytest.raises(ValueError, match=r"04-tts-scaling .*\(GPU: needs 1, cluster has 0\)"):
            pool.has_room(evaluation)
    with RayExecutor(tmp_path, cpus_per_cell=3) as pool, pytest.raises(ValueError, match="CPU: needs 3, cluster has 2"):
        pool.has_room(evaluation)
    assert ray.is_initialized()  # a cluster the executor did not start is left running
