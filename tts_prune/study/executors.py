"""Executors of study cells: ``local`` (one cell per device of this machine) and ``ray`` (Ray tasks).

An executor is a context manager with ``has_room(cell)``, ``submit(cell, upstream)`` and ``wait()``
(finished cells as ``(cell, marker dict | error text)``); the scheduler in ``runner.run_study`` decides
what is ready. ``EXECUTORS`` maps a name to ``module:class`` and is imported lazily, so the local
executor never imports Ray.
"""
from __future__ import annotations

import importlib
import os
import queue
import signal
import threading
from pathlib import Path

from ..models.runtime import available_cores
from .devices import CPU_ONLY_NOTEBOOKS, cell_devices, cell_environment, parse_devices, run_in_process, runs_on_gpu
from .devices import visible_devices
from .execute import environment, failure_text, run_cell
from .grid import Cell

EXECUTORS = {"local": "tts_prune.study.executors:LocalExecutor",
             "ray": "tts_prune.study.ray_executor:RayExecutor"}


def make_executor(name: str, **options):
    """The executor ``name`` (a key of ``EXECUTORS``) built with ``options``."""
    if name not in EXECUTORS:
        raise ValueError(f"executor {name!r} is unknown; allowed: {sorted(EXECUTORS)}. "
                         "Pass --executor local (default) or --executor ray.")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


def cell_resources(cell: Cell, cpus: float = 1, gpus: float | None = None, cluster_gpus: float = 0) -> dict:
    """What one cell asks of a cluster: ``cpus`` and ``gpus``. ``gpus=None`` derives it from the study: a cell
    that needs an accelerator (backend vllm, a GPU dtype, tensor parallelism: ``devices.runs_on_gpu``) asks for
    its ``devices.cell_devices`` (``tensor_parallel_size`` x ``data_parallel_size``, else 1), and so does any
    other cell on a cluster that has GPUs (``cluster_gpus`` > 0, e.g. ``backend: auto`` picking CUDA); on a
    CPU-only cluster the rest ask for none. An explicit ``gpus`` is a floor that tensor parallelism raises.
    05-report asks for none either way."""
    if cpus <= 0 or (gpus is not None and gpus < 0):
        raise ValueError(f"cpus={cpus}, gpus={gpus}: a cell needs cpus > 0 and gpus >= 0. "
                         "Fix --cpus-per-cell / --gpus-per-cell.")
    if cell.notebook in CPU_ONLY_NOTEBOOKS:
        return {"CPU": cpus, "GPU": 0}
    if gpus is None:
        return {"CPU": cpus, "GPU": cell_devices(cell) if runs_on_gpu(cell) or cluster_gpus > 0 else 0}
    return {"CPU": cpus, "GPU": max(gpus, cell_devices(cell) if cell_devices(cell) > 1 else 0)}


class LocalExecutor:
    """Cells on this machine, one per device side by side: the default, and what ``make study`` uses.

    ``devices``: the accelerator ids cells may use (``"0,1,2,3"`` or a list; default: every visible GPU,
    ``devices.visible_devices``). Each cell takes ``devices.cell_devices(cell)`` of them (a tensor-parallel vLLM
    cell takes k) and sees only those (``CUDA_VISIBLE_DEVICES``); 05-report takes none. The cores are split
    evenly among the device slots (``OMP_NUM_THREADS``, which ``threads: auto`` honours), so cells side by side
    do not oversubscribe the CPU. Several slots: each cell runs in its own child process (``run_in_process``),
    started from a thread. No GPU: one CPU slot, and cells run one at a time in this process, as with a single
    device (whose id is still set for the cell).
    """

    def __init__(self, notebooks: Path, show_progress: bool = True, devices=None):
        self.notebooks, self.show_progress = notebooks, show_progress
        self.devices = parse_devices(devices) if devices is not None else visible_devices()
        self.slots = list(self.devices) or [None]  # None: the one CPU slot
        self.free = list(self.slots)
        self.threads = max(1, available_cores() // len(self.slots))
        self.queue, self.running, self.done = [], {}, queue.Queue()
        self.processes: dict = {}  # cell key -> child process, while it runs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for child in list(self.processes.values()):  # interrupted: stop the cells still running, kernels too
            try:
                os.killpg(child.pid, signal.SIGKILL)  # the child leads its own process group
            except ProcessLookupError:
                pass
        return False

    def _needs(self, cell: Cell) -> int:
        need = cell_devices(cell) if self.devices else min(1, cell_devices(cell))  # CPU slot: no parallelism
        if need > len(self.slots):
            raise ValueError(f"cell {cell.notebook} [{cell.label}] needs {need} devices (tensor_parallel_size x "
                             f"data_parallel_size) but the local executor has {len(self.slots)} "
                             f"({','.join(self.devices) or 'no GPU'}); pass more with --devices or lower "
                             "tensor_parallel_size")
        return need

    @property
    def _parallel(self) -> bool:
        return len(self.slots) > 1

    def has_room(self, cell: Cell) -> bool:
        need = self._needs(cell)
        if not self._parallel:
            return not self.queue and not self.running
        return need <= len(self.free)

    def submit(self, cell: Cell, upstream: dict) -> None:
        need = self._needs(cell)
        taken, self.free = self.free[:need], self.free[need:]
        self.running[cell.key] = taken
        if not self._parallel:
            self.queue.append((cell, upstream, taken))
            return
        env = cell_environment(taken if self.devices else None, self.threads)
        threading.Thread(target=self._run_child, args=(cell, upstream, env), daemon=True,
                         name=f"cell {cell.label}"[:60]).start()

    def _run_child(self, cell: Cell, upstream: dict, env: dict) -> None:
        try:
            result = run_in_process(cell, self.notebooks, upstream, env, self.processes)
        except Exception as error:  # could not start the child: still report the cell, never hang wait()
            result = failure_text(error)
        self.done.put((cell, result))

    def _finish(self, cell: Cell, result):
        self.free += self.running.pop(cell.key)
        self.free.sort(key=self.slots.index)
        return cell, result

    def wait(self) -> list[tuple[Cell, dict | str]]:
        if not self._parallel:
            cell, upstream, taken = self.queue.pop(0)
            overrides = {"CUDA_VISIBLE_DEVICES": ",".join(taken)} if self.devices and taken else {}
            try:
                with environment(overrides):
                    result = run_cell(cell, self.notebooks, self.show_progress, upstream)
            except Exception as error:  # the scheduler turns it into CellFailed naming the cell
                result = failure_text(error)
            return [self._finish(cell, result)]
        finished = [self._finish(*self.done.get())]  # block for one, then take whatever else has ended
        while True:
            try:
                finished.append(self._finish(*self.done.get_nowait()))
            except queue.Empty:
                return finished
