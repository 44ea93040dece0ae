"""Running a study: each cell executed with papermill, skipped on rerun when its marker matches.

A cell is skipped when its marker records the same parameters and the same input notebook; a failing
cell stops the run with papermill's error. The manifest and ``reports/index.html`` are written even
after a failure, so what finished stays linked.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from .. import paths
from .grid import NOTEBOOK_AXES, Cell, StudyConfig, expand
from .render import install_widget_assets, render_html, write_index, write_manifest

KERNEL = "python3"


def notebook_parameters(notebook: Path) -> dict:
    """The names declared in a notebook's `parameters` cell (papermill's own parser)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


# Parameters that change how a run looks, not what it computes: a cell done with a progress bar is done.
_COSMETIC = frozenset({"show_progress"})


def _fingerprint(cell: Cell, source: Path) -> dict:
    parameters = {k: v for k, v in cell.parameters.items() if k not in _COSMETIC}
    return {"parameters": parameters, "notebook_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def is_done(cell: Cell, source: Path) -> bool:
    """A cell is done when its marker records these parameters and this input notebook."""
    try:
        return json.loads(cell.marker.read_text())["fingerprint"] == json.loads(json.dumps(_fingerprint(cell, source)))
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return False


def run_cell(cell: Cell, notebooks: Path | None = None, show_progress: bool = True) -> float:
    """Execute one cell with papermill and render it; returns seconds. Raises papermill's error on failure."""
    import papermill

    source = Path(notebooks or paths.NOTEBOOKS_DIR) / f"{cell.notebook}.ipynb"
    declared = notebook_parameters(source)
    parameters = {k: v for k, v in cell.parameters.items() if k in declared}  # only what the notebook declares
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    papermill.execute_notebook(str(source), str(cell.output), parameters=parameters, kernel_name=KERNEL,
                               cwd=str(source.parent), progress_bar=show_progress)
    render_html(cell.output, cell.html)
    seconds = time.perf_counter() - start
    cell.marker.write_text(json.dumps({"fingerprint": _fingerprint(cell, source), "seconds": seconds,
                                       "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1, default=str))
    return seconds


def run_study(study: StudyConfig, reports: Path | None = None, notebooks: Path | None = None,
              show_progress: bool = True, force: bool = False, **dirs) -> list[Cell]:
    """Run every cell not already done, in order; write the study manifest and reports/index.html."""
    reports = Path(reports or paths.REPORTS_DIR)
    notebooks = Path(notebooks or paths.NOTEBOOKS_DIR)
    cells = expand(study, reports=reports, show_progress=show_progress, **dirs)
    install_widget_assets(reports)
    bar = tqdm(cells, desc=f"study {study.name}", unit="notebook", disable=not show_progress)
    ran = False
    try:
        for cell in bar:
            bar.set_postfix_str(f"{cell.notebook} {cell.label}"[:80])
            summary = not NOTEBOOK_AXES[cell.notebook]  # the report reads the whole store: redo it after new runs
            if not force and not (summary and ran) and is_done(cell, notebooks / f"{cell.notebook}.ipynb"):
                continue
            run_cell(cell, notebooks, show_progress=show_progress)
            ran = True
    finally:  # the index also links what finished before a failure
        write_manifest(study, cells, reports)
        write_index(reports)
    return cells
