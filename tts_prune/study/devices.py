"""Which accelerators a study cell needs, which ones this machine has, and a cell run in its own process.

``visible_devices()``: the GPU ids this process may use (``CUDA_VISIBLE_DEVICES`` when set, else every GPU
torch counts). ``cell_devices(cell)``: how many a cell takes (0 for notebooks that only read tables; a vLLM
cell with ``tensor_parallel_size`` k, and ``data_parallel_size`` d, takes k x d; any other cell one).
``run_in_process(...)`` runs one cell in a child Python with its own environment (``CUDA_VISIBLE_DEVICES`` =
its devices, ``OMP_NUM_THREADS`` = its share of the cores), which the papermill kernel it starts inherits: the
local executor's way of running cells side by side, one per device (``executors.LocalExecutor``).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .grid import SUMMARY, Cell

# Notebooks that only read tables and records: they never ask for a GPU.
CPU_ONLY_NOTEBOOKS = frozenset({SUMMARY})
# Model dtypes that only make sense on an accelerator: a study that asks for them runs on GPUs.
GPU_DTYPES = frozenset({"bfloat16", "float16", "bf16", "fp16", "half"})


def parse_devices(devices: str | Sequence) -> tuple[str, ...]:
    """``"0,1,2"`` or ``[0, 1, 2]`` -> ``("0", "1", "2")``: distinct, non-empty device ids."""
    items = devices.split(",") if isinstance(devices, str) else list(devices)
    ids = tuple(str(item).strip() for item in items)
    if not ids or any(not i for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"devices={devices!r}: give distinct device ids separated by commas, e.g. --devices 0,1,2,3 "
                         "(as CUDA_VISIBLE_DEVICES names them)")
    return ids


def visible_devices() -> tuple[str, ...]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES``'s when set (empty: none), else ``0..n-1`` for the
    n GPUs torch sees (none without CUDA)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return tuple(i.strip() for i in listed.split(",") if i.strip() and i.strip() != "-1")
    import torch

    return tuple(str(i) for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


def _int(value, name: str, cell: Cell) -> int:
    try:
        number = int(value or 1)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ValueError(f"cell {cell.notebook} [{cell.label}]: {name}={value!r} must be a positive integer")
    return number


def cell_devices(cell: Cell) -> int:
    """Accelerators one cell takes: 0 for ``CPU_ONLY_NOTEBOOKS``; ``tensor_parallel_size`` x ``data_parallel_size``
    (cell parameters, or keys of its ``vllm_options``) for a vLLM cell that sets them; else 1."""
    if cell.notebook in CPU_ONLY_NOTEBOOKS:
        return 0
    options = cell.parameters.get("vllm_options") or {}
    count = 1
    for name in ("tensor_parallel_size", "data_parallel_size"):
        count *= _int(cell.parameters.get(name, options.get(name)), name, cell)
    return count


def runs_on_gpu(cell: Cell) -> bool:
    """Whether a cell cannot run without an accelerator: backend vllm, a GPU-only dtype, or model parallelism."""
    if cell.notebook in CPU_ONLY_NOTEBOOKS:
        return False
    return (cell.parameters.get("backend") == "vllm" or str(cell.parameters.get("dtype", "")) in GPU_DTYPES
            or cell_devices(cell) > 1)


def cell_environment(devices: Sequence[str] | None, threads: int | None) -> dict:
    """The environment of a cell's process: its devices (``None``: unchanged, e.g. one CPU slot) and its share
    of the cores (``threads``: ``OMP_NUM_THREADS``, which ``threads: auto`` honours); imports this tts_prune."""
    import tts_prune

    env = dict(os.environ)
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    package_root = str(Path(tts_prune.__file__).resolve().parents[1])  # the child and its kernel import this copy
    env["PYTHONPATH"] = os.pathsep.join([package_root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p and p != package_root]])
    return env


def run_in_process(cell: Cell, notebooks: Path, upstream: dict, env: dict, processes: dict | None = None):
    """Run ``cell`` in a child Python with ``env``; returns its marker (dict) or the error's text (str).

    ``processes`` (optional) holds the running child under the cell's key, so that an interrupted study can stop
    it. The child writes its result to a temporary file; a child that dies without one (killed, out of memory)
    is reported with the end of its stderr."""
    with tempfile.TemporaryDirectory(prefix="tts-prune-cell-") as folder:
        result = Path(folder) / "result.pickle"
        job = pickle.dumps((cell, str(notebooks), upstream, str(result)))
        child = subprocess.Popen([sys.executable, "-m", "tts_prune.study.devices"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
        if processes is not None:
            processes[cell.key] = child
        try:
            _, stderr = child.communicate(job)
        finally:
            if processes is not None:
                processes.pop(cell.key, None)
        if result.is_file():
            return pickle.loads(result.read_bytes())
        tail = stderr.decode(errors="replace")[-4000:]
        return f"the process running the cell exited with code {child.returncode} and no result:\n{tail}"


def _child() -> None:
    from .execute import failure_text, run_cell

    cell, notebooks, upstream, result = pickle.load(sys.stdin.buffer)
    try:
        outcome = run_cell(cell, Path(notebooks), show_progress=False, upstream=upstream)
    except Exception as error:  # the parent turns the text into CellFailed naming the cell
        outcome = failure_text(error)
    Path(result).write_bytes(pickle.dumps(outcome))


if __name__ == "__main__":
    _child()
