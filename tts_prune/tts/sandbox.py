"""A time limit that works from any thread: one persistent worker process, killed and replaced at the limit.

math-verify bounds its own work with ``signal.alarm`` (SIGALRM), which Python only allows in the main
thread, and which cannot interrupt a long C-level computation anyway: sympy evaluating a power tower such
as ``5^{5^{5^{5^5}}}`` never returns to the interpreter (Math-Verify issues #59, #63, #65). So grading
runs in a separate interpreter (``python -c`` running ``serve``, not ``multiprocessing``: nothing is
forked from a process that holds threads or CUDA, and the caller's ``__main__`` is never re-imported).
The worker is started once and reused, so a call costs one pipe round trip (well under a millisecond
plus the work); a call that passes its limit kills the worker (SIGKILL), raises ``GradingTimeout``, and the
next call starts a fresh one. The worker's address space is capped (``resource.RLIMIT_AS``) so a runaway
expression fails with ``MemoryError`` inside the worker instead of swapping the machine, and on Linux it
dies with its parent process (``PR_SET_PDEATHSIG``, armed from one long-lived thread), so a killed
notebook kernel leaves no grader spinning. POSIX only (the pipe is polled with ``select``).
"""
from __future__ import annotations

import atexit
import importlib
import os
import queue
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

START_TIMEOUT_S = 120.0        # importing sympy + math-verify on a loaded 2-core machine takes a few seconds
MEMORY_LIMIT_BYTES = 4 << 30   # the worker's address-space cap


_DEFAULT: Worker | None = None
_DEFAULT_LOCK = threading.Lock()


class GradingTimeout(Exception):
    """The call passed its time limit; the worker was killed and will be replaced on the next call."""


class WorkerError(RuntimeError):
    """The worker raised, or died without answering; the message carries its traceback or exit code."""


class Worker:
    """One grading process, used by one call at a time (a lock serialises threads)."""

    def __init__(self, preload: tuple[str, ...] = (), memory_limit_bytes: int = MEMORY_LIMIT_BYTES):
        self.preload = tuple(preload)
        self.memory_limit_bytes = int(memory_limit_bytes)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self.starts = 0          # how many processes this worker has started (1 + one per timeout / crash)

    def call(self, module: str, function: str, args: tuple, timeout_s: float):
        """``module.function(*args)`` in the worker; ``GradingTimeout`` after ``timeout_s`` seconds."""
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} must be a positive number of seconds, e.g. 5.0")
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            try:
                self._send.send((module, function, args))
                ready = self._recv.poll(timeout_s)
            except (BrokenPipeError, EOFError, OSError) as err:
                code = self._stop()
                raise WorkerError(f"grading worker died (exit code {code}) before answering: {err}") from err
            if not ready:
                self._stop()
                raise GradingTimeout(f"{module}.{function} passed its {timeout_s} s limit; worker replaced")
            try:
                ok, value = self._recv.recv()
            except (EOFError, OSError) as err:
                code = self._stop()
                raise WorkerError(f"grading worker died (exit code {code}) while answering") from err
        if not ok:
            raise WorkerError(f"{module}.{function}{args!r} raised in the grading worker:\n{value}")
        return value

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first call and after a kill)."""
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])     # the folder holding the tts_prune package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        code = (f"from tts_prune.tts.sandbox import serve; "
                f"serve({list(self.preload)!r}, {self.memory_limit_bytes}, {os.getpid()})")
        self._proc = _spawner().popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, close_fds=True)
        self._send = Connection(os.dup(self._proc.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self._proc.stdout.fileno()), writable=False)
        self._proc.stdin.close()
        self._proc.stdout.close()
        self.starts += 1
        if not self._recv.poll(START_TIMEOUT_S) or self._recv.recv() != "ready":
            code = self._stop()
            raise WorkerError(f"grading worker did not start within {START_TIMEOUT_S} s (exit code {code}); "
                              f"check that `{sys.executable} -c 'import math_verify'` works")

    def _stop(self) -> int | None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        code = self._proc.returncode if self._proc is not None else None
        self._proc = self._send = self._recv = None
        return code

    def close(self) -> None:
        with self._lock:
            self._stop()


class _Spawner:
    """Starts worker processes from one thread that lives as long as the interpreter.

    Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that created the child exits, not the process:
    a worker started from a short-lived thread (a grading thread pool) would be killed with it.
    """

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="tts-prune-grading-spawner").start()

    def _run(self) -> None:
        while True:
            args, kwargs, box, done = self._jobs.get()
            try:
                box.append(subprocess.Popen(*args, **kwargs))
            except BaseException as err:   # noqa: BLE001  (handed back to the caller, re-raised there)
                box.append(err)
            done.set()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        box: list = []
        done = threading.Event()
        self._jobs.put((args, kwargs, box, done))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


_SPAWNER: _Spawner | None = None


def _spawner() -> _Spawner:
    global _SPAWNER
    with _DEFAULT_LOCK:
        if _SPAWNER is None:
            _SPAWNER = _Spawner()
        return _SPAWNER


def _die_with_parent(parent_pid: int) -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass   # not Linux: the worker still exits when its stdin closes, once its current call returns
    if os.getppid() != parent_pid:     # the parent died before the line above took effect
        os._exit(0)


def serve(preload: list[str], memory_limit_bytes: int, parent_pid: int) -> None:
    """The worker's loop: read ``(module, function, args)``, answer ``(ok, value_or_traceback)``."""
    import resource
    import traceback

    _die_with_parent(parent_pid)
    if memory_limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    # The protocol owns the original stdout; anything the graded code prints goes to stderr instead.
    out = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    inp = Connection(os.dup(0), writable=False)
    for name in preload:
        importlib.import_module(name)
    out.send("ready")
    while True:
        try:
            module, function, args = inp.recv()
        except EOFError:
            return
        try:
            reply = (True, getattr(importlib.import_module(module), function)(*args))
        except Exception:   # noqa: BLE001  (any failure is reported back with its traceback)
            reply = (False, traceback.format_exc())
        out.send(reply)




def default_worker() -> Worker:
    """The process-wide grading worker (math-verify preloaded), started on first use, closed at exit."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Worker(preload=("math_verify", "tts_prune.tts.grading"))
            atexit.register(_DEFAULT.close)
        return _DEFAULT
