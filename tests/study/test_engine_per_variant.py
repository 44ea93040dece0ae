"""One engine per model variant: paper.yaml's 04 cells, and what a 04 cell does with its engine.

The grid check counts cells. The run executes paper.yaml itself at smoke size (a tiny random model, one problem,
two budgets, the paper's four benchmarks, its vLLM backend) through papermill with a fake ``vllm`` package
(``tests/_fake_vllm``) that logs every engine start and shutdown to a file, and a ``sitecustomize`` that logs
each divergence call with the number of engines alive at that moment: each 04 cell starts one engine for all
four benchmarks, shuts it down once, and runs the divergence only after the shutdown.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from tests._helpers_study import ROOT, tiny_model_dir
from tts_prune import paths
from tts_prune.study import grid, runner
from tts_prune.tts import benchmarks

FAKE_VLLM = ROOT / "tests" / "_fake_vllm"
PAPER = ROOT / "studies" / "paper.yaml"


def test_paper_04_cells_are_one_per_model_variant(tmp_path):
    paper = grid.load_study(PAPER)
    cells = grid.expand(paper, reports=tmp_path)
    counts = Counter(c.notebook for c in cells)
    # per model: (magnitude, wanda) x (uniform, owl, layerif) x 2 sparsities + shortgpt by 1, 2, 3 blocks + dense
    variants = len(paper.models) * (2 * 3 * 2 + 3 + 1)
    assert counts["04-tts-scaling"] == variants == 32
    assert (counts["01-calibration"], counts["02-allocation"], counts["05-report"]) == (2, 4, 1)
    evaluated = [c for c in cells if c.notebook == "04-tts-scaling"]
    assert all(c.parameters["benchmarks"] == list(paper.benchmarks) for c in evaluated)
    assert len({(c.axes["model"], c.axes["method"], c.axes["allocation"], c.axes["sparsity"],
                 c.axes.get("shortgpt_layers")) for c in evaluated}) == 32
    # each pruned variant reads its own 03 cell, and every 03 cell is read by exactly one 04 cell
    needed = [c.needs for c in evaluated if c.axes["method"] != "dense"]
    assert all(len(n) == 1 for n in needed) and len({n[0] for n in needed}) == len(needed) == counts["03-pruning"]
    assert sum(counts.values()) == 2 + 4 + counts["03-pruning"] + 32 + 1


@pytest.fixture(scope="module")
def paper_small(tmp_path_factory):
    """paper.yaml at smoke size through the fake vLLM: the dense and one pruned (magnitude) 04 cell of a tiny model."""
    if not all(benchmarks.available(b) for b in grid.load_study(PAPER).benchmarks):
        if not paths.SHARED_BENCHMARK_DIR.exists():
            pytest.skip("the paper's benchmark files are not here (make data)")
        benchmarks.fetch(show_progress=False)
    out = tmp_path_factory.mktemp("paper-small")
    events = out / "events.jsonl"
    trap = out / "trap"
    trap.mkdir()
    (trap / "sitecustomize.py").write_text(
        "import tts_prune.pruning.divergence as divergence\n\n_real = divergence.trace_divergence\n\n\n"
        "def _logged(*args, **kwargs):\n    import vllm\n\n"
        "    vllm.log('divergence', alive=vllm.LLM.alive)\n    return _real(*args, **kwargs)\n\n\n"
        "divergence.trace_divergence = _logged\n")
    model = str(tiny_model_dir(out / "tiny-llama"))
    study = grid.load_study(PAPER, models=[model], notebooks=["04-tts-scaling"], methods=["magnitude"],
                            allocations=["uniform"], sparsities=[0.1], shortgpt_layers=[], budgets=[4, 8], seeds=[7], limit=1,
                            answer_tokens=8, calibration="gsm8k", nsamples=4, seqlen=32,
                            params={"threads": 1, "ppl_tokens": 256, "ppl_seqlen": 64, "divergence_traces": 2,
                                    "vllm_options": {"artifact_root": str(out / "artifacts")}})
    dirs = dict(reports=out / "reports", results=out / "results", figures=out / "figures", models_out=out / "models")
    environment = {"PYTHONPATH": os.pathsep.join([str(trap), str(FAKE_VLLM), str(ROOT)]),
                   "FAKE_VLLM_EVENTS": str(events)}
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        cells = runner.run_study(study, show_progress=False, **dirs)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    log = [json.loads(line) for line in events.read_text().splitlines()]
    return {"study": study, "cells": cells, "events": log, **dirs}


def test_each_04_cell_starts_one_engine_for_every_benchmark_and_diverges_after_its_shutdown(paper_small):
    cells = [c for c in paper_small["cells"] if c.notebook == "04-tts-scaling"]
    assert sorted(c.axes["method"] for c in cells) == ["dense", "magnitude"]
    by_kernel: dict[int, list[dict]] = {}
    for event in paper_small["events"]:
        by_kernel.setdefault(event["pid"], []).append(event)
    assert len(by_kernel) == 2  # one kernel per 04 cell (the 03 cell starts no engine)
    sequences = sorted([e["event"] for e in kernel] for kernel in by_kernel.values())
    four = len(paper_small["study"].benchmarks)
    assert four == 4
    assert sequences == [["start", "shutdown", "destroy_model_parallel"],                        # dense
                         ["start", "shutdown", "destroy_model_parallel"] + ["divergence"] * four]  # pruned
    assert all(e["alive"] == 0 for e in paper_small["events"] if e["event"] == "divergence")
    pruned = next(c for c in cells if c.axes["method"] != "dense")
    (started,) = [e for e in paper_small["events"] if e["event"] == "start" and e["model"] == pruned.parameters["pruned_model"]]
    assert started  # vLLM served the very directory 03-pruning saved


def test_the_engine_served_every_benchmark_and_each_has_its_own_outputs(paper_small):
    import tts_prune
    from tts_prune.report.analysis import read_divergences

    study = paper_small["study"]
    records = tts_prune.load_results(paper_small["results"] / study.name / "records")
    assert set(records["backend"]) == {"vllm"}
    assert Counter(records["benchmark"]) == {b: 2 * len(study.budgets) * study.limit for b in study.benchmarks}
    pruned = next(c for c in paper_small["cells"] if c.notebook == "04-tts-scaling" and c.axes["method"] != "dense")
    figures, artifacts = Path(pruned.parameters["figures_dir"]), Path(pruned.parameters["artifacts_dir"])
    assert (figures / "scaling.png").exists()  # one figure, a panel per benchmark
    for name in study.benchmarks:
        assert (figures / grid.slug(name) / "divergence_by_position.png").exists()
        assert json.loads((artifacts / grid.slug(name) / "summary.json").read_text())["benchmark"] == name
    divergences = read_divergences(paper_small["results"] / study.name / "artifacts")
    assert sorted(divergences["benchmark"]) == sorted(study.benchmarks)
    assert (divergences["method"] == "magnitude").all() and (divergences["kl_mean"] >= 0).all()
