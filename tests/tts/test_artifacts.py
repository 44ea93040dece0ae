"""Saved model artifacts (the directories vLLM loads) on shared storage: written to a temporary directory and
renamed into place, so racing writers (threads, processes) end with one complete copy that all of them use,
and a reader never sees a half-written one; under a study they live in its output tree."""
from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests._helpers_eval import toy_pair
from tts_prune import paths
from tts_prune.models.loading import model_fingerprint
from tts_prune.tts.backends import ARTIFACT_FILE, save_artifact

torch.set_num_threads(1)


def _save(model, tokenizer, root: str, start) -> str:
    start.wait()  # every writer at once
    return str(save_artifact(model, tokenizer, root=Path(root)).path)


def _process_writer(root: str, start, results) -> None:
    results.put(_save(*toy_pair(0), root, start))


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (ARTIFACT_FILE, "config.json", "model.safetensors"))


def _watch(target: Path, stop: threading.Event, seen: dict) -> None:
    while not stop.is_set():  # whenever the target exists, it is whole
        if target.exists():
            seen[_complete(target)] += 1
        stop.wait(0.002)


def test_racing_writers_share_one_complete_copy(tmp_path):
    model, tokenizer = toy_pair(0)
    fingerprint = model_fingerprint(model)
    target = tmp_path / "artifacts" / fingerprint
    stop, seen, returned = threading.Event(), {True: 0, False: 0}, []
    watcher = threading.Thread(target=_watch, args=(target, stop, seen))
    watcher.start()
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(3 + 3), ctx.Queue()
    processes = [ctx.Process(target=_process_writer, args=(str(tmp_path / "artifacts"), start, results))
                 for _ in range(3)]
    for process in processes:
        process.start()
    # Threads get their own copies, built here: toy_pair seeds torch's global generator, which threads share.
    copies = [toy_pair(0) for _ in range(3)]
    threads = [threading.Thread(target=lambda pair=pair: returned.append(_save(*pair, str(tmp_path / "artifacts"), start)))
               for pair in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    paths_from_processes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=600)
    stop.set()
    watcher.join()
    assert all(p.exitcode == 0 for p in processes)
    assert paths_from_processes + returned == [str(target)] * 6  # every writer uses the one copy
    assert seen[True] > 0 and seen[False] == 0  # the watcher saw the target, and only ever whole
    assert sorted(p.name for p in target.parent.iterdir()) == [fingerprint]  # no temporary copy left behind
    assert json.loads((target / ARTIFACT_FILE).read_text())["fingerprint"] == fingerprint
    weights = load_file(target / "model.safetensors")
    assert all(torch.equal(weights[name], value) for name, value in model.state_dict().items() if name in weights)


def test_a_half_written_copy_from_an_old_writer_is_replaced(tmp_path):
    model, tokenizer = toy_pair(0)
    fingerprint = model_fingerprint(model)
    target = tmp_path / fingerprint
    target.mkdir()
    (target / "config.json").write_text("{}")  # an in-place writer died here: no weights, no fingerprint file
    artifact = save_artifact(model, tokenizer, root=tmp_path)
    assert artifact.path == target and _complete(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fingerprint]
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert save_artifact(model, tokenizer, root=tmp_path).path == target  # done: reused, not rewritten
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_study_puts_artifacts_in_its_output_tree(tmp_path, monkeypatch):
    from tts_prune.study import grid

    monkeypatch.delenv(paths.ARTIFACTS_ENV, raising=False)
    assert paths.artifacts_dir() == paths.MODELS_DIR / "artifacts"  # outside a study: the checkout's models/
    cells = grid.expand(grid.StudyConfig(name="s", models=("m",), methods=("wanda",), benchmarks=("gsm8k",)),
                        reports=tmp_path / "r", models_out=tmp_path / "out" / "models")
    assert {c.parameters["model_artifacts"] for c in cells} == {str(tmp_path / "out" / "models" / "s" / "artifacts")}
    monkeypatch.setenv(paths.ARTIFACTS_ENV, str(tmp_path / "study-artifacts"))
    model, tokenizer = toy_pair(1)
    artifact = save_artifact(model, tokenizer)
    assert artifact.path == tmp_path / "study-artifacts" / model_fingerprint(model) and _complete(artifact.path)
