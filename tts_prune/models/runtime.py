"""How many CPU threads torch uses: ``use_threads("auto")`` takes every core this process may run on.

"auto" counts the cores in the process's CPU affinity mask (``os.sched_getaffinity``), not the machine's
cores: under ``taskset``, a container's cpuset or a batch scheduler's allocation it is the share the
process was given. A positive ``OMP_NUM_THREADS`` in the environment lowers it further: launchers that
allocate CPUs without pinning them (Ray gives each task ``OMP_NUM_THREADS`` = its CPUs, as do many HPC
job wrappers) say so there, and study cells run side by side must not each take every core. On a machine
shared with other heavy jobs pass 1 instead: OpenMP threads that find their core busy spin rather than sleep, and two such processes on two cores can each run slower than
with one thread (measured here, NOTES-ENV.md). Notebooks, the ``--threads`` option of every
``tts-prune`` command, the study's ``params.threads`` and the bench scripts all go through this function.
"""
from __future__ import annotations

import os

AUTO = "auto"


def available_cores() -> int:
    """Cores this process may run on: its affinity mask (``os.cpu_count()`` where there is no such call),
    capped by a positive integer ``OMP_NUM_THREADS``."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no sched_getaffinity
        cores = max(1, os.cpu_count() or 1)
    allocated = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(allocated)) if allocated.isdigit() and int(allocated) > 0 else cores


def resolve_threads(threads: int | str | None) -> int:
    """A thread count from ``"auto"`` / ``None`` (all available cores), a positive int or its string ("4")."""
    if threads is None or (isinstance(threads, str) and threads.strip().lower() == AUTO):
        return available_cores()
    try:
        count = int(threads)
        exact = not isinstance(threads, bool) and float(threads) == count
    except (TypeError, ValueError):
        count, exact = 0, False
    if not exact or count < 1:
        raise ValueError(f"threads={threads!r} is not a thread count; use 'auto' (all {available_cores()} cores "
                         "this process may use) or a positive integer such as 1 (when other jobs share the cores)")
    return count


def use_threads(threads: int | str | None = AUTO) -> int:
    """Set torch's intra-op thread count (``"auto"``: every available core) and return the count set."""
    import torch

    count = resolve_threads(threads)
    torch.set_num_threads(count)
    return count


def free_accelerator() -> None:
    """Collect garbage and return PyTorch's cached CUDA blocks to the driver, so that memory freed in this process
    (an engine shut down, a model dropped) is there for the next model, here or in another process."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
