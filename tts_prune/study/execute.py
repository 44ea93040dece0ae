"""One study cell: executed with papermill, rendered, and marked done with its fingerprints.

A cell is done when its marker (``<cell>.done.json``) records the same *input fingerprint*: the
parameters its notebook declares, the notebook's sha256 and the *output fingerprints* of the cells it
needs. A cell's output fingerprint is what downstream cells see of it: for 03-pruning the
``pruned_fingerprint`` of the model it saved, for any other notebook a digest of the run itself (a
rerun is a new output). Markers are written atomically, so concurrent readers and writers (cells on
many Ray workers, a shared file system) never see half a marker.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path

from .. import paths
from .grid import PRODUCER, Cell
from .render import render_html

KERNEL = "python3"


def quiet_kernel_manager():
    """papermill's kernel manager on IPC transport (local sockets), which is what a kernel on the same host
    needs. On TCP, ipykernel >= 7 prints "[IPKernelApp] WARNING | Kernel is running over TCP without encryption"
    to every run's stderr, which reads like a fault and hides real warnings; IPC is the remedy it names itself,
    so nothing is filtered: every other message of the kernel still reaches stderr.

    Each kernel gets its own socket path: jupyter_client's IPC default is ``kernel-ipc-<n>`` in the working
    directory, so kernels started side by side in one folder (``--devices``, Ray) would bind each other's sockets
    and fail with "Invalid Signature". Windows has no IPC sockets in ZeroMQ: there it stays on TCP.
    """
    import os
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        def _ip_default(self) -> str:  # jupyter_client's default (and what it falls back to when loading)
            # sockets are "<ip>-<port>": a prefix of this kernel's own, short (a socket path is limited to ~104)
            if not getattr(self, "_own_ipc", None):
                self._own_ipc = os.path.join(tempfile.gettempdir(), f"tts-prune-kernel-{uuid.uuid4().hex[:16]}-ipc")
            return self._own_ipc

    return IPCKernelManager


def execute_notebook(source, output, parameters: dict | None = None, cwd=None, progress_bar: bool = True):
    """``papermill.execute_notebook`` with the study's kernel (``KERNEL``) over IPC (``quiet_kernel_manager``)."""
    import papermill

    return papermill.execute_notebook(str(source), str(output), parameters=parameters or {}, kernel_name=KERNEL,
                                      cwd=None if cwd is None else str(cwd), progress_bar=progress_bar,
                                      kernel_manager_class=quiet_kernel_manager())


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


def failure_text(error: BaseException) -> str:
    """papermill's message (it already holds the cell's traceback), or a Python traceback for anything else."""
    import papermill

    if isinstance(error, papermill.PapermillExecutionError):
        return str(error)
    return "".join(traceback.format_exception(error))


@contextmanager
def environment(overrides: dict):
    """``os.environ`` updated for the duration (the papermill kernel started inside inherits it)."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_cell(cell: Cell, notebooks: Path | None = None, show_progress: bool = True,
             upstream: dict | None = None) -> dict:
    """Execute one cell with papermill, render it and write its marker; returns the marker.

    Raises papermill's error on failure (papermill has saved the failed notebook; no marker is written).
    The kernel gets ``TTS_PRUNE_ARTIFACTS`` = the cell's ``model_artifacts`` (``paths.artifacts_dir``).
    The marker records the input fingerprint, the output fingerprint, start/end times, the host and the devices.
    """
    source = Path(notebooks or paths.NOTEBOOKS_DIR) / f"{cell.notebook}.ipynb"
    declared = notebook_parameters(source)
    fingerprint = input_fingerprint(cell, source, upstream, declared)
    parameters = {k: v for k, v in cell.parameters.items() if k in declared}  # only what the notebook declares
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # Model artifacts a cell saves (for vLLM) go under the study's output tree, not the checkout's models/.
    storage = {paths.ARTIFACTS_ENV: cell.parameters["model_artifacts"]} if "model_artifacts" in cell.parameters else {}
    with environment(storage):
        execute_notebook(source, cell.output, parameters, cwd=source.parent, progress_bar=show_progress)
    render_html(cell.output, cell.html)
    finished = time.time()
    run_id = f"{socket.gethostname()}:{os.getpid()}:{started!r}"
    marker = {"fingerprint": fingerprint, "output": output_fingerprint(cell, fingerprint, run_id),
              "started": started, "finished": finished, "seconds": finished - started, "host": socket.gethostname(),
              "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # what the cell's kernel was given (None: not set)
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(finished))}
    write_marker(cell, marker)
    return marker
