"""Executors of study cells: ``local`` (one at a time, in this process tree) and ``ray`` (Ray tasks).

An executor is a context manager with ``has_room(cell)``, ``submit(cell, upstream)`` and ``wait()``
(finished cells as ``(cell, marker dict | error text)``); the scheduler in ``runner.run_study`` decides
what is ready. ``EXECUTORS`` maps a name to ``module:class`` and is imported lazily, so the local
executor never imports Ray.
"""
from __future__ import annotations

import importlib
import traceback
from pathlib import Path

from .execute import run_cell
from .grid import SUMMARY, Cell

EXECUTORS = {"local": "tts_prune.study.executors:LocalExecutor",
             "ray": "tts_prune.study.ray_executor:RayExecutor"}

# Notebooks that only read tables and records: they never ask for a GPU.
CPU_ONLY_NOTEBOOKS = frozenset({SUMMARY})


def make_executor(name: str, **options):
    """The executor ``name`` (a key of ``EXECUTORS``) built with ``options``."""
    if name not in EXECUTORS:
        raise ValueError(f"executor {name!r} is unknown; allowed: {sorted(EXECUTORS)}. "
                         "Pass --executor local (default) or --executor ray.")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def cell_resources(cell: Cell, cpus: float = 1, gpus: float = 0) -> dict:
    """What one cell asks of a cluster: ``cpus`` and ``gpus``; an evaluation with vLLM tensor
    parallelism (a ``tensor_parallel_size`` parameter) asks for that many GPUs; 05-report for none."""
    if cpus <= 0 or gpus < 0:
        raise ValueError(f"cpus={cpus}, gpus={gpus}: a cell needs cpus > 0 and gpus >= 0. "
                         "Fix --cpus-per-cell / --gpus-per-cell.")
    if cell.notebook in CPU_ONLY_NOTEBOOKS:
        return {"CPU": cpus, "GPU": 0}
    return {"CPU": cpus, "GPU": max(gpus, int(cell.parameters.get("tensor_parallel_size", 0) or 0))}


def failure_text(error: BaseException) -> str:
    """papermill's message (it already holds the cell's traceback), or a Python traceback for anything else."""
    import papermill

    if isinstance(error, papermill.PapermillExecutionError):
        return str(error)
    return "".join(traceback.format_exception(error))


class LocalExecutor:
    """One cell at a time, in this process tree: the default, and what ``make study`` uses."""

    def __init__(self, notebooks: Path, show_progress: bool = True):
        self.notebooks, self.show_progress, self.queue = notebooks, show_progress, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def has_room(self, cell: Cell) -> bool:
        return not self.queue

    def submit(self, cell: Cell, upstream: dict) -> None:
        self.queue.append((cell, upstream))

    def wait(self) -> list[tuple[Cell, dict | str]]:
        cell, upstream = self.queue.pop(0)
        try:
            return [(cell, run_cell(cell, self.notebooks, self.show_progress, upstream))]
        except Exception as error:  # the scheduler turns it into CellFailed naming the cell
            return [(cell, failure_text(error))]
