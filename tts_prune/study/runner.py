"""Running a study: its cells executed with papermill in dependency order, skipped on rerun when done.

A cell is done when its marker (``<cell>.done.json``) records the same *input fingerprint*: the
parameters its notebook declares, the notebook's sha256 and the *output fingerprints* of the cells it
needs. A cell's output fingerprint is what downstream cells see of it: for 03-pruning the
``pruned_fingerprint`` of the model it saved, for any other notebook a digest of the run itself (a
rerun is a new output). So a 03 cell that saves different weights re-runs the 04 cells that read
them, and 05-report re-runs after any 03 or 04 cell ran. The scheduler hands ready cells to an
executor (``executors.EXECUTORS``: local and sequential by default, or Ray); a failing cell stops new
submissions, the running ones finish and stay done, and the study raises ``CellFailed`` naming the
cell with papermill's error. The manifest and ``reports/index.html`` are written even after a failure.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

from tqdm.auto import tqdm

from .. import paths
from .grid import PRODUCER, Cell, StudyConfig, expand
from .render import install_widget_assets, render_html, write_index, write_manifest

KERNEL = "python3"


class CellFailed(RuntimeError):
    """A study cell failed; ``cell`` is the cell, the message names it and carries its (papermill) error."""

    def __init__(self, cell: Cell, error: str):
        super().__init__(f"cell {cell.notebook} [{cell.label}] failed ({cell.output}):\n{error}")
        self.cell = cell


def notebook_parameters(notebook: Path) -> dict:
    """The names declared in a notebook's `parameters` cell (papermill's own parser)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


# Parameters that change how a run looks, not what it computes: a cell done with a progress bar is done.
_COSMETIC = frozenset({"show_progress"})


def input_fingerprint(cell: Cell, source: Path, upstream: dict | None = None, declared=None) -> dict:
    """What a cell's result depends on: declared parameters, notebook bytes, needed cells' outputs."""
    declared = notebook_parameters(source) if declared is None else declared
    parameters = {k: v for k, v in cell.parameters.items() if k in declared and k not in _COSMETIC}
    fingerprint = {"parameters": parameters, "notebook_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    if cell.needs:
        fingerprint["upstream"] = {key: (upstream or {})[key] for key in cell.needs}
    return json.loads(json.dumps(fingerprint, default=str))  # as a marker stores it


def _saved_model_fingerprint(cell: Cell) -> str | None:
    recipe = Path(cell.parameters.get("model_out", "")) / "pruning_recipe.json"
    try:
        return json.loads(recipe.read_text())["pruned_fingerprint"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None


# Notebooks whose output has a content fingerprint; every other cell's output is identified by its run.
OUTPUT_FINGERPRINTS = {PRODUCER: _saved_model_fingerprint}


def output_fingerprint(cell: Cell, fingerprint: dict, run_id: str) -> str:
    content = OUTPUT_FINGERPRINTS.get(cell.notebook, lambda _cell: None)(cell)
    return content or hashlib.sha256(f"{json.dumps(fingerprint, sort_keys=True)}:{run_id}".encode()).hexdigest()[:24]


def read_marker(cell: Cell) -> dict | None:
    try:
        return json.loads(cell.marker.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_marker(cell: Cell, marker: dict) -> None:
    """Atomically (temporary file + ``os.replace``): a concurrent reader sees the old marker or the new one."""
    tmp = cell.marker.with_name(f".{cell.marker.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(marker, indent=1, default=str))
    os.replace(tmp, cell.marker)


def is_done(cell: Cell, source: Path, upstream: dict | None = None) -> bool:
    """A cell is done when its marker records this input fingerprint (parameters, notebook, upstream outputs)."""
    marker = read_marker(cell)
    return marker is not None and marker.get("fingerprint") == input_fingerprint(cell, source, upstream)


def run_cell(cell: Cell, notebooks: Path | None = None, show_progress: bool = True,
             upstream: dict | None = None) -> dict:
    """Execute one cell with papermill, render it and write its marker; returns the marker.

    Raises papermill's error on failure (papermill has saved the failed notebook; no marker is written).
    The marker records the input fingerprint, the output fingerprint, start/end times and the host.
    """
    import papermill

    source = Path(notebooks or paths.NOTEBOOKS_DIR) / f"{cell.notebook}.ipynb"
    declared = notebook_parameters(source)
    fingerprint = input_fingerprint(cell, source, upstream, declared)
    parameters = {k: v for k, v in cell.parameters.items() if k in declared}  # only what the notebook declares
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    papermill.execute_notebook(str(source), str(cell.output), parameters=parameters, kernel_name=KERNEL,
                               cwd=str(source.parent), progress_bar=show_progress)
    render_html(cell.output, cell.html)
    finished = time.time()
    run_id = f"{socket.gethostname()}:{os.getpid()}:{started!r}"
    marker = {"fingerprint": fingerprint, "output": output_fingerprint(cell, fingerprint, run_id),
              "started": started, "finished": finished, "seconds": finished - started, "host": socket.gethostname(),
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(finished))}
    write_marker(cell, marker)
    return marker


def run_study(study: StudyConfig, reports: Path | None = None, notebooks: Path | None = None,
              show_progress: bool = True, force: bool = False, executor: str = "local",
              executor_options: dict | None = None, **dirs) -> list[Cell]:
    """Run every cell not already done, each after the cells it needs; write the manifest and index.

    ``executor`` names an entry of ``executors.EXECUTORS`` (``local``: one cell at a time, in the order of
    the walk; ``ray``: cells as Ray tasks, as many at once as the cluster holds); ``executor_options``
    go to its constructor. Raises ``CellFailed`` for the first failing cell, after the running ones end.
    """
    from .executors import make_executor

    reports = Path(reports or paths.REPORTS_DIR)
    notebooks = Path(notebooks or paths.NOTEBOOKS_DIR)
    cells = expand(study, reports=reports, show_progress=show_progress, **dirs)
    install_widget_assets(reports)
    declared = {nb: notebook_parameters(notebooks / f"{nb}.ipynb") for nb in {c.notebook for c in cells}}
    bar = tqdm(total=len(cells), desc=f"study {study.name}", unit="notebook", disable=not show_progress)
    outputs: dict[str, str] = {}  # key -> output fingerprint of every finished cell
    pending, running, failure = list(cells), {}, None
    try:
        with make_executor(executor, notebooks=notebooks, show_progress=show_progress,
                           **(executor_options or {})) as pool:
            while pending or running:
                for cell in [c for c in pending if all(k in outputs for k in c.needs)]:
                    upstream = {k: outputs[k] for k in cell.needs}
                    marker = read_marker(cell)
                    source = notebooks / f"{cell.notebook}.ipynb"
                    if not force and marker is not None and "output" in marker and \
                            marker.get("fingerprint") == input_fingerprint(cell, source, upstream, declared[cell.notebook]):
                        outputs[cell.key] = marker["output"]
                        pending.remove(cell)
                        bar.update()
                        continue
                    if failure is not None or not pool.has_room(cell):
                        break  # keep the walk's order: later cells wait for room too
                    pool.submit(cell, upstream)
                    running[cell.key] = cell
                    pending.remove(cell)
                if any(all(k in outputs for k in c.needs) for c in pending) and failure is None and not running:
                    continue  # skipped cells made new ones ready
                if not running:
                    break  # nothing can run: a failure blocked the rest
                bar.set_postfix_str("running: " + "; ".join(f"{c.notebook} {c.label}" for c in running.values())[:120])
                for cell, result in pool.wait():
                    running.pop(cell.key)
                    bar.update()
                    if isinstance(result, dict):
                        outputs[cell.key] = result["output"]
                    elif failure is None:
                        failure = CellFailed(cell, result)
            if failure is not None:
                raise failure
    finally:  # the index also links what finished before a failure
        bar.close()
        write_manifest(study, cells, reports)
        write_index(reports)
    return cells
