"""The study as a DAG: what re-runs when an upstream output changes, resuming after a failure,
concurrent writers to the store and the markers, and no Ray import with the local executor.

Trivial notebooks stand in for 03/04/05 (their kernels only read and write small JSON files), so the
invalidation logic is checked in seconds against what each cell actually read.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.study._trivial import PRUNE, trivial_notebooks
from tts_prune.cli import main
from tts_prune.study import execute, grid, runner
from tts_prune.study.executors import cell_resources, make_executor
from tts_prune.tts.results import ResultStore, load_results

ROOT = Path(__file__).resolve().parents[2]


def _study(tmp_path, methods=("wanda", "magnitude")):
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump({"name": "dag", "models": ["m"], "notebooks": ["04-tts-scaling", "05-report"],
                                    "methods": list(methods), "sparsities": [0.5], "benchmarks": ["b1"],
                                    "budgets": [4]}))
    return grid.load_study(path)


def _dirs(tmp_path):
    return dict(reports=tmp_path / "reports", results=tmp_path / "results", figures=tmp_path / "figs",
                models_out=tmp_path / "models")


def _stamps(cells):
    return {c.key: c.output.stat().st_mtime_ns for c in cells}


def test_a_changed_03_cell_reruns_exactly_the_04_cells_that_read_it(tmp_path):
    notebooks = trivial_notebooks(tmp_path / "nb")
    study = _study(tmp_path)
    cells = runner.run_study(study, notebooks=notebooks, show_progress=False, **_dirs(tmp_path))
    by = {(c.notebook, c.axes.get("method")): c for c in cells}
    # 03-pruning is not listed in the study: the two pruned recipes 04 evaluates pulled it in.
    assert {k for k in by if k[0] == "03-pruning"} == {("03-pruning", "wanda"), ("03-pruning", "magnitude")}
    for method in ("wanda", "magnitude"):
        evaluated = by[("04-tts-scaling", method)]
        read = json.loads((Path(evaluated.parameters["artifacts_dir"]) / "read.json").read_text())
        assert read == {"pruned_fingerprint": f"WEIGHTS-{method}"}  # 04 read the model its own 03 cell saved
        marker = execute.read_marker(evaluated)
        assert marker["fingerprint"]["upstream"] == {by[("03-pruning", method)].key: f"WEIGHTS-{method}"}
    first = _stamps(cells)

    # The 03 notebook now saves other weights for wanda only: 03 re-runs (new notebook), wanda's 04 cells
    # and the report follow; magnitude's 04 cell and the dense baseline keep their results.
    trivial_notebooks(tmp_path / "nb", PRUNE.replace('f"WEIGHTS-{method}"', '"WEIGHTS-v2" if method == "wanda" else f"WEIGHTS-{method}"'))
    runner.run_study(study, notebooks=notebooks, show_progress=False, **_dirs(tmp_path))
    second = _stamps(cells)
    changed = {k for k in first if first[k] != second[k]}
    assert changed == {by[("03-pruning", "wanda")].key, by[("03-pruning", "magnitude")].key,
                       by[("04-tts-scaling", "wanda")].key, by[("05-report", None)].key}
    read = json.loads((Path(by[("04-tts-scaling", "wanda")].parameters["artifacts_dir"]) / "read.json").read_text())
    assert read == {"pruned_fingerprint": "WEIGHTS-v2"}

    # A comment in 03: it re-runs, but saves the same weights, so nothing downstream is stale.
    trivial_notebooks(tmp_path / "nb", "# a comment\n" + PRUNE.replace('f"WEIGHTS-{method}"', '"WEIGHTS-v2" if method == "wanda" else f"WEIGHTS-{method}"'))
    runner.run_study(study, notebooks=notebooks, show_progress=False, **_dirs(tmp_path))
    third = _stamps(cells)
    assert {k for k in second if second[k] != third[k]} == {c.key for c in cells if c.notebook == "03-pruning"}

    runner.run_study(study, notebooks=notebooks, show_progress=False, **_dirs(tmp_path))
    assert _stamps(cells) == third  # everything done: nothing runs


def test_a_failing_cell_names_itself_finished_cells_stay_done_and_a_rerun_resumes(tmp_path, capsys):
    notebooks = trivial_notebooks(tmp_path / "nb")
    path = tmp_path / "fail.yaml"
    path.write_text(yaml.safe_dump({"name": "fail", "models": ["m"], "notebooks": ["03-pruning", "04-tts-scaling"],
                                    "methods": ["wanda", "boom"], "sparsities": [0.5], "benchmarks": ["b1"],
                                    "budgets": [4]}))
    out = tmp_path / "o"
    args = ["study", "--study", str(path), "--notebooks", str(notebooks), "--out", str(out), "--no-progress"]
    flag = out / "models" / "FAIL-boom"  # a transient failure (think: out of memory) of one cell
    flag.parent.mkdir(parents=True)
    flag.touch()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "this cell fails on purpose" in err and "03-pruning [model=m, method=boom" in err
    cells = grid.expand(grid.load_study(path), reports=out / "reports", results=out / "results",
                        figures=out / "figures", models_out=out / "models")
    done = {c.key for c in cells if c.marker.exists()}
    # The walk runs 03/wanda, then 03/boom fails and nothing more is submitted.
    assert done == {c.key for c in cells if c.notebook == "03-pruning" and c.axes["method"] == "wanda"}
    stamps = {c.key: c.output.stat().st_mtime_ns for c in cells if c.key in done}
    flag.unlink()
    assert main(args) == 0
    assert all(c.marker.exists() for c in cells)
    assert {k: t for k, t in _stamps(cells).items() if k in done} == stamps  # resumed: the done cell is not redone


def test_cell_resources_and_unknown_executor():
    cells = grid.expand(grid.StudyConfig(name="r", models=("m",), methods=("wanda",), benchmarks=("gsm8k",)),
                        reports=Path("/tmp/r"))
    evaluation = next(c for c in cells if c.notebook == "04-tts-scaling")
    report = next(c for c in cells if c.notebook == "05-report")
    assert cell_resources(evaluation, cpus=4, gpus=1) == {"CPU": 4, "GPU": 1}
    assert cell_resources(report, cpus=4, gpus=1) == {"CPU": 4, "GPU": 0}  # the report reads tables only
    parallel = grid.Cell(evaluation.notebook, evaluation.axes, {**evaluation.parameters, "tensor_parallel_size": 4},
                         evaluation.output)
    assert cell_resources(parallel, cpus=1, gpus=1) == {"CPU": 1, "GPU": 4}
    with pytest.raises(ValueError, match="cpus=0"):
        cell_resources(evaluation, cpus=0)
    with pytest.raises(ValueError, match=r"executor 'dask' is unknown; allowed: \['local', 'ray'\]"):
        make_executor("dask", notebooks=Path("."))


def test_ray_options_need_the_ray_executor(capsys):
    assert main(["study", "--study", str(ROOT / "studies" / "smoke.yaml"), "--address", "auto"]) == 2
    assert "apply to --executor ray only" in capsys.readouterr().err


def test_the_local_executor_never_imports_ray(tmp_path):
    notebooks = trivial_notebooks(tmp_path / "nb")
    _study(tmp_path, methods=("wanda",))
    script = (f"import sys; from tts_prune.cli import main; "
              f"code = main(['study', '--study', {str(tmp_path / 'dag.yaml')!r}, '--notebooks', {str(notebooks)!r}, "
              f"'--out', {str(tmp_path / 'o')!r}, '--no-progress']); "
              "print('RAY' if 'ray' in sys.modules else 'NO-RAY', code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split()[-2:] == ["NO-RAY", "0"], done.stderr[-2000:]


# ------------------------------------------------------------------------------- concurrent writers
def _write_shards(root: str, worker: int, shards: int) -> None:
    store = ResultStore(root)
    for shard in range(shards):
        store.append([{"model": "m", "recipe": {}, "benchmark": "b", "problem_id": f"{worker}-{shard}-{i}",
                       "budget": 8, "seed": 0, "decoding": {}, "correct": (worker + shard + i) % 2}
                      for i in range(50)])


def _rewrite_marker(marker: str, worker: int, times: int) -> None:
    cell = grid.Cell("03-pruning", {}, {}, Path(marker).with_suffix("").with_suffix(".ipynb"))
    for i in range(times):
        execute.write_marker(cell, {"writer": worker, "i": i, "pad": "x" * 20000})


def test_result_shards_and_markers_take_concurrent_writers(tmp_path):
    workers, shards = 4, 15
    ctx = multiprocessing.get_context("spawn")
    marker = tmp_path / "cell.done.json"
    jobs = [ctx.Process(target=_write_shards, args=(str(tmp_path / "store"), w, shards)) for w in range(workers)]
    jobs += [ctx.Process(target=_rewrite_marker, args=(str(marker), w, 200)) for w in range(2)]
    for job in jobs:
        job.start()
    cell = grid.Cell("03-pruning", {}, {}, marker.with_suffix("").with_suffix(".ipynb"))
    seen = 0
    while any(job.is_alive() for job in jobs):  # a reader racing the writers only ever sees whole files
        records = ResultStore(tmp_path / "store").records()
        assert len(records) % 50 == 0
        read = execute.read_marker(cell)
        assert read is None or len(read["pad"]) == 20000
        seen += read is not None
    assert all(job.exitcode == 0 for job in jobs)
    df = load_results(tmp_path / "store")
    assert len(df) == workers * shards * 50 and df["problem_id"].is_unique
    assert df["correct"].sum() == sum((w + s + i) % 2 for w in range(workers) for s in range(shards) for i in range(50))
    assert not list((tmp_path / "store").glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert execute.read_marker(cell)["i"] == 199
