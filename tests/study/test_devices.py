"""The local executor keeps every device busy: one cell per device side by side, each seeing only its own
``CUDA_VISIBLE_DEVICES`` (fake ids on this CPU machine), a tensor-parallel cell taking k, the cores split among
the slots, the failure semantics of the sequential walk, and the sequential run's results. Also the Ray
executor's GPU request derived from the study, and the order that keeps a pruned 04 cell after its dense one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests._helpers_study import ROOT, assert_same_results, overlap, smoke_run
from tests.study._trivial import PRUNE, trivial_notebooks
from tts_prune.cli import main
from tts_prune.models.runtime import available_cores
from tts_prune.study import execute, grid, runner
from tts_prune.study.devices import cell_devices, cell_environment, parse_devices, visible_devices
from tts_prune.study.executors import LocalExecutor, cell_resources

FAKE = ("7", "8", "9")

# 03 stand-in that logs what its kernel sees, then waits until three 03 cells have started: it can only
# finish if the three run at the same time (a sequential executor fails it after the timeout).
BARRIER = '''import json, os, pathlib, time
log = pathlib.Path(model_out).parents[2] / "log"
log.mkdir(parents=True, exist_ok=True)
started = time.time()
seen = {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "threads": os.environ.get("OMP_NUM_THREADS"),
        "artifacts": os.environ.get("TTS_PRUNE_ARTIFACTS")}
(log / f"start-{method}.json").write_text(json.dumps(seen))
while len(list(log.glob("start-*.json"))) < 3 and time.time() - started < 300:
    time.sleep(0.2)
assert len(list(log.glob("start-*.json"))) >= 3, "the three 03 cells did not run at the same time"
''' + PRUNE


def _study(tmp_path, methods) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"name": "dev", "models": ["m"], "notebooks": ["04-tts-scaling", "05-report"],
                                    "methods": list(methods), "sparsities": [0.5], "benchmarks": ["b1"],
                                    "budgets": [4]}))
    return path


def _cells(path: Path, out: Path) -> list[grid.Cell]:
    return grid.expand(grid.load_study(path), reports=out / "reports", results=out / "results",
                       figures=out / "figures", models_out=out / "models")


def test_three_devices_run_three_cells_at_once_each_on_its_own(tmp_path):
    notebooks = trivial_notebooks(tmp_path / "nb", BARRIER)
    path = _study(tmp_path, ("wanda", "magnitude", "sparsegpt"))
    out = tmp_path / "o"
    code = main(["study", "--study", str(path), "--notebooks", str(notebooks), "--out", str(out), "--no-progress",
                 "--devices", ",".join(FAKE)])
    assert code == 0
    seen = [json.loads(p.read_text()) for p in sorted((out / "models" / "log").glob("start-*.json"))]
    assert sorted(s["devices"] for s in seen) == sorted(FAKE)  # three at once: one device each, all different
    assert {s["threads"] for s in seen} == {str(max(1, available_cores() // 3))}  # the cores split three ways
    assert {s["artifacts"] for s in seen} == {str(out / "models" / "dev" / "artifacts")}  # storage under --out
    cells = _cells(path, out)
    markers = {c.key: execute.read_marker(c) for c in cells}
    assert all(markers.values())
    for cell in cells:  # every cell after what it needs; the report on no device, the rest on one
        assert all(markers[k]["finished"] <= markers[cell.key]["started"] for k in cell.needs), cell.key
        assert markers[cell.key]["devices"] == ("" if cell.notebook == "05-report" else markers[cell.key]["devices"])
        if cell.notebook != "05-report":
            assert markers[cell.key]["devices"] in FAKE
    keys = list(markers)
    for i, a in enumerate(keys):  # cells that overlap in time never share a device
        for b in keys[i + 1:]:
            if overlap(markers[a], markers[b]) and markers[a]["devices"] and markers[b]["devices"]:
                assert markers[a]["devices"] != markers[b]["devices"], (a, b)
    for cell in cells:
        if cell.notebook == "04-tts-scaling" and cell.axes["method"] != "dense":  # read its own 03 cell's model
            read = json.loads((Path(cell.parameters["artifacts_dir"]) / "read.json").read_text())
            assert read == {"pruned_fingerprint": f"WEIGHTS-{cell.axes['method']}"}


def test_a_failing_cell_side_by_side_stops_new_cells_and_a_rerun_resumes(tmp_path, capsys):
    notebooks = trivial_notebooks(tmp_path / "nb")
    path = _study(tmp_path, ("boom", "wanda", "magnitude"))
    out = tmp_path / "o"
    args = ["study", "--study", str(path), "--notebooks", str(notebooks), "--out", str(out), "--no-progress",
            "--devices", ",".join(FAKE)]
    flag = out / "models" / "FAIL-boom"
    flag.parent.mkdir(parents=True)
    flag.touch()
    assert main(args) == 1
    assert "this cell fails on purpose" in capsys.readouterr().err
    by = {(c.notebook, c.axes.get("method")): c for c in _cells(path, out)}
    assert by[("03-pruning", "wanda")].marker.exists() and by[("03-pruning", "magnitude")].marker.exists()
    assert not by[("03-pruning", "boom")].marker.exists()
    assert not by[("04-tts-scaling", "boom")].output.exists()  # what needs the failed cell never started
    assert not by[("05-report", None)].output.exists()
    done = {k: c.output.stat().st_mtime_ns for k, c in by.items() if c.marker.exists()}
    flag.unlink()
    assert main(args) == 0
    assert all(c.marker.exists() for c in by.values())
    assert {k: by[k].output.stat().st_mtime_ns for k in done} == done  # resumed: done cells are not redone


def test_a_tensor_parallel_cell_takes_k_devices(tmp_path):
    cells = _cells(_study(tmp_path, ("wanda",)), tmp_path)
    evaluation = next(c for c in cells if c.notebook == "04-tts-scaling")
    report = next(c for c in cells if c.notebook == "05-report")
    wide = grid.Cell(evaluation.notebook, evaluation.axes, {**evaluation.parameters, "vllm_options":
                     {"tensor_parallel_size": 2}}, evaluation.output)
    assert (cell_devices(evaluation), cell_devices(wide), cell_devices(report)) == (1, 2, 0)
    pool = LocalExecutor(tmp_path, devices="7,8,9")
    assert pool.has_room(wide) and pool._needs(wide) == 2
    pool.free = ["9"]  # two devices are taken: a one-device cell fits, the tensor-parallel one waits
    assert pool.has_room(evaluation) and not pool.has_room(wide) and pool.has_room(report)
    huge = grid.Cell(wide.notebook, wide.axes, {**wide.parameters, "tensor_parallel_size": 4}, wide.output)
    with pytest.raises(ValueError, match=r"needs 4 devices .* has 3 \(7,8,9\); pass more with --devices"):
        pool.has_room(huge)  # the cell's own tensor_parallel_size wins over its vllm_options' one
    env = cell_environment(["7", "8"], threads=3)
    assert env["CUDA_VISIBLE_DEVICES"] == "7,8" and env["OMP_NUM_THREADS"] == "3"
    assert env["PYTHONPATH"].split(":")[0] == str(ROOT)  # the child imports this checkout's tts_prune
    cpu = LocalExecutor(tmp_path, devices=None) if not visible_devices() else None
    if cpu is not None:  # no GPU: one CPU slot, tensor parallelism does not apply
        assert cpu.slots == [None] and cpu._needs(wide) == 1


def test_an_interrupted_study_stops_the_cells_still_running(tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    with pytest.raises(KeyboardInterrupt), LocalExecutor(tmp_path, devices=FAKE) as pool:
        pool.processes["cell"] = child
        raise KeyboardInterrupt
    assert child.wait(timeout=30) == -9  # killed with its process group


def test_device_lists_and_visible_devices(monkeypatch):
    assert parse_devices("0, 1,2") == ("0", "1", "2") and parse_devices([3, 4]) == ("3", "4")
    for bad in ("", "0,,1", "1,1"):
        with pytest.raises(ValueError, match="distinct device ids"):
            parse_devices(bad)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_devices() == ("2", "5") and LocalExecutor(Path("."), devices=None).slots == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_devices() == () and LocalExecutor(Path("."), devices=None).slots == [None]


def test_ray_asks_for_the_gpus_the_study_runs_on(tmp_path):
    paper = grid.expand(grid.load_study(ROOT / "studies" / "paper.yaml"), reports=tmp_path)
    smoke = grid.expand(grid.load_study(ROOT / "studies" / "smoke.yaml"), reports=tmp_path)
    # paper.yaml: vLLM and bfloat16, so every cell but the report asks for one GPU, even on a GPU-less cluster
    assert {c.notebook: cell_resources(c, cpus=8)["GPU"] for c in paper} == {
        "01-calibration": 1, "02-allocation": 1, "03-pruning": 1, "04-tts-scaling": 1, "05-report": 0}
    # smoke: transformers on CPU: no GPU on a CPU cluster, one each where the cluster has GPUs
    assert {cell_resources(c)["GPU"] for c in smoke} == {0}
    assert {c.notebook: cell_resources(c, cluster_gpus=8)["GPU"] for c in smoke}["04-tts-scaling"] == 1
    evaluation = next(c for c in paper if c.notebook == "04-tts-scaling")
    wide = grid.Cell(evaluation.notebook, evaluation.axes, {**evaluation.parameters, "tensor_parallel_size": 2},
                     evaluation.output)
    assert cell_resources(wide)["GPU"] == 2 and cell_resources(wide, gpus=0)["GPU"] == 2
    assert cell_resources(evaluation, gpus=0)["GPU"] == 0  # an explicit 0 is obeyed (CPU run)


def test_a_pruned_evaluation_runs_after_the_dense_one_it_compares_with(tmp_path):
    cells = _cells(_study(tmp_path, ("wanda",)), tmp_path)  # the dense baseline comes with every study
    dense = next(c for c in cells if c.notebook == "04-tts-scaling" and c.axes["method"] == "dense")
    pruned = next(c for c in cells if c.notebook == "04-tts-scaling" and c.axes["method"] == "wanda")
    assert pruned.after == (dense.key,) and dense.after == ()  # an order (the divergence reads dense traces)...
    assert dense.key not in pruned.needs  # ...not an input: the pruned cell's fingerprint does not change


@pytest.mark.slow
def test_smoke_study_on_three_fake_devices_equals_the_sequential_run(tmp_path):
    sequential = smoke_run()
    dirs = dict(reports=tmp_path / "reports", results=tmp_path / "results", figures=tmp_path / "figures",
                models_out=tmp_path / "models")
    cells = runner.run_study(sequential["study"], show_progress=False, executor_options={"devices": FAKE}, **dirs)
    markers = {c.key: execute.read_marker(c) for c in cells}
    assert all(markers.values()) and [c.key for c in cells] == [c.key for c in sequential["cells"]]
    at_once = max(sum(m["started"] <= moment < m["finished"] for m in markers.values())
                  for moment in (m["started"] for m in markers.values()))
    assert at_once == 3  # 01, 02 and 03 start together, one per device
    for cell in cells:
        assert all(markers[k]["finished"] <= markers[cell.key]["started"] for k in cell.needs + cell.after), cell.key
        assert markers[cell.key]["devices"] in (("",) if cell.notebook == "05-report" else FAKE)
    assert_same_results(tmp_path, sequential)


def test_devices_belong_to_the_local_executor(capsys):
    assert main(["study", "--study", str(ROOT / "studies" / "smoke.yaml"), "--executor", "ray", "--devices", "0"]) == 2
    assert "--devices applies to --executor local only" in capsys.readouterr().err
    assert main(["study", "--study", str(ROOT / "studies" / "smoke.yaml"), "--gpus-per-cell", "0"]) == 2
    assert "apply to --executor ray only" in capsys.readouterr().err
