"""The Ray executor: each study cell is a Ray task that asks for its CPUs and GPUs.

Ray (https://docs.ray.io) schedules tasks on every node of a cluster; a task with ``num_gpus=n`` gets
``CUDA_VISIBLE_DEVICES`` set to its n GPUs, which the papermill kernel it starts inherits. Cells are
submitted as their inputs finish and as long as the cluster's current resources hold them, so the
cells named as running in the progress bar are running, not queued. Without ``address`` a local
single-node cluster is started (and shut down afterwards); with one, the executor connects to that
cluster (``auto``, ``HOST:6379`` or ``ray://HOST:10001``) and leaves it running. Every worker must see
the same paths: the notebooks, the package, and the study's output folders (shared storage).
"""
from __future__ import annotations

from pathlib import Path

from .execute import run_cell
from .executors import cell_resources, failure_text
from .grid import Cell


def _run_cell_task(cell: Cell, notebooks: str, upstream: dict):
    """Runs on a Ray worker: the cell with papermill; returns its marker, or the error's text."""
    try:
        return run_cell(cell, Path(notebooks), show_progress=False, upstream=upstream)
    except Exception as error:
        return failure_text(error)


class RayExecutor:
    """Cells as Ray tasks with ``cpus_per_cell`` CPUs and ``gpus_per_cell`` GPUs each (see ``cell_resources``;
    ``None``, the default, derives each cell's GPUs from the study: never 0 for a cell that runs on GPUs)."""

    def __init__(self, notebooks: Path, show_progress: bool = True, address: str | None = None,
                 cpus_per_cell: float = 1, gpus_per_cell: float | None = None, init_options: dict | None = None):
        try:
            import ray
        except ImportError as error:
            raise ImportError("--executor ray needs Ray: pip install -e '.[cluster]' (make setup installs it)") from error
        self.ray, self.notebooks = ray, str(Path(notebooks).absolute())
        self.address, self.cpus, self.gpus = address, cpus_per_cell, gpus_per_cell
        self.init_options = dict(init_options or {})
        self.started, self.running = False, {}  # ObjectRef -> (cell, resources)

    def __enter__(self):
        if not self.ray.is_initialized():
            if self.address:
                self.ray.init(address=self.address, **self.init_options)
            else:  # a single-node cluster on this machine; no dashboard (it needs ray[default])
                self.ray.init(include_dashboard=False, **self.init_options)
            self.started = True
        return self

    def __exit__(self, *exc):
        for ref in self.running:  # a failure elsewhere (KeyboardInterrupt): do not leave tasks behind
            self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()
        return False

    def _need(self, cell: Cell, total: dict | None = None) -> dict:
        total = self.ray.cluster_resources() if total is None else total
        return cell_resources(cell, self.cpus, self.gpus, cluster_gpus=total.get("GPU", 0))

    def has_room(self, cell: Cell) -> bool:
        total = self.ray.cluster_resources()
        need = self._need(cell, total)
        short = {k: (v, total.get(k, 0)) for k, v in need.items() if v > total.get(k, 0)}
        if short:
            have = ", ".join(f"{k}: needs {v:g}, cluster has {t:g}" for k, (v, t) in short.items())
            raise ValueError(f"cell {cell.notebook} [{cell.label}] cannot run on this Ray cluster ({have}); "
                             "lower --cpus-per-cell / --gpus-per-cell (0: run on CPU) or add nodes with those "
                             "resources.")
        used = {k: sum(r.get(k, 0) for _, r in self.running.values()) for k in need}
        return not self.running or all(used[k] + v <= total.get(k, 0) for k, v in need.items())

    def submit(self, cell: Cell, upstream: dict) -> None:
        need = self._need(cell)
        task = self.ray.remote(_run_cell_task).options(num_cpus=need["CPU"], num_gpus=need["GPU"],
                                                      name=f"{cell.notebook}:{cell.label}"[:200], max_retries=0)
        self.running[task.remote(cell, self.notebooks, upstream)] = (cell, need)

    def wait(self) -> list[tuple[Cell, dict | str]]:
        refs = list(self.running)
        ready, rest = self.ray.wait(refs, num_returns=1)
        if rest:  # collect every other task that has finished meanwhile
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        done = []
        for ref in ready:
            cell, _ = self.running.pop(ref)
            try:
                done.append((cell, self.ray.get(ref)))
            except self.ray.exceptions.RayError as error:  # the worker died (out of memory, node lost)
                done.append((cell, f"Ray task failed: {error}"))
        return done
