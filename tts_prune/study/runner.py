"""Running a study: its cells executed in dependency order by an executor, skipped on rerun when done.

``execute`` decides when a cell is done (its marker records the same declared parameters, notebook and
outputs of the cells it needs), so a 03 cell that saves different weights re-runs the 04 cells that
read them, and 05-report re-runs after any 03 or 04 cell ran. The scheduler here hands ready cells
to an executor (``executors.EXECUTORS``: local, one cell per device, by default, or Ray); a failing cell
stops new submissions, the running ones finish and stay done, and the study raises ``CellFailed``
naming the cell with papermill's error. The manifest and ``reports/index.html`` are written even
after a failure, so what finished stays linked.
"""
from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from .. import paths
from .execute import CellFailed, input_fingerprint, notebook_parameters, read_marker
from .executors import make_executor
from .grid import Cell, StudyConfig, expand
from .render import install_widget_assets, write_index, write_manifest


def run_study(study: StudyConfig, reports: Path | None = None, notebooks: Path | None = None,
              show_progress: bool = True, force: bool = False, executor: str = "local",
              executor_options: dict | None = None, **dirs) -> list[Cell]:
    """Run every cell not already done, each after the cells it needs; write the manifest and index.

    ``executor`` names an entry of ``executors.EXECUTORS`` (``local``: one cell per device of this machine
    (``devices`` option), in the order of the walk, one at a time without a GPU; ``ray``: cells as Ray tasks,
    as many at once as the cluster holds); ``executor_options``
    go to its constructor. Raises ``CellFailed`` for the first failing cell, after the running ones end.
    """
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
                for cell in [c for c in pending if all(k in outputs for k in c.needs + c.after)]:
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
                if any(all(k in outputs for k in c.needs + c.after) for c in pending) and failure is None and not running:
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
