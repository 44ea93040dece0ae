"""The grading time limit: a real math-verify hang is graded as a timeout, from any thread, and the
worker process is replaced afterwards; worker failures come back as errors that carry their cause."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tts_prune.tts.grading import Grade, answers_equivalent, grade_answer
from tts_prune.tts.sandbox import GradingTimeout, Worker, WorkerError, default_worker

# Math-Verify issue #65: parse() returns at once, verify() never does (sympy evaluates the power tower
# in C, where neither SIGALRM nor math-verify's own timeouts can interrupt it).
HANGS = "The final answer is \\boxed{\\dfrac{5^{\\left(5^{\\left(5^{\\left(5^5\\right)}\\right)} - 4\\right)} - 5}{16}}"
TIMED_OUT = Grade(correct=False, prediction=None, no_answer=False, timeout=True)


def _in_thread(fn):
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(120)   # a liveness bound, far above the 1.5 s limit: a hang fails here instead of blocking
    assert not thread.is_alive(), "grading hung past its time limit"
    return out[0]


def test_a_hanging_answer_is_a_timeout_and_the_worker_is_replaced():
    assert grade_answer("math", "\\boxed{2}", "2").correct        # the worker is up
    starts = default_worker().starts
    assert grade_answer("math", HANGS, "5", timeout_s=1.5) == TIMED_OUT
    grade = grade_answer("math", "so $\\boxed{\\frac{1}{2}}$", "0.5")
    assert grade == Grade(correct=True, prediction="\\frac{1}{2}", no_answer=False, timeout=False)
    assert default_worker().starts == starts + 1                 # killed once, replaced once


def test_grading_off_the_main_thread():
    # math-verify's SIGALRM timeouts raise in worker threads; ours work there, for answers and hangs.
    assert _in_thread(lambda: grade_answer("math", "\\boxed{\\frac{1}{2}}", "0.5")).correct
    assert _in_thread(lambda: grade_answer("math", HANGS, "5", timeout_s=1.5)) == TIMED_OUT
    assert _in_thread(lambda: answers_equivalent("math", "\\frac{1}{2}", "0.5")) is True


def test_threads_share_the_worker():
    results = {}

    def grade(i):
        results[i] = grade_answer("math", f"The answer is $\\boxed{{{i}/4}}$.", str(i / 4)).correct

    threads = [threading.Thread(target=grade, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {i: True for i in range(8)}


def test_answers_equivalent():
    assert answers_equivalent("math", "\\frac{1}{2}", "0.5")
    assert not answers_equivalent("math", "\\frac{1}{3}", "0.5")
    assert answers_equivalent("math", "(-\\infty, 3]", "(-\\infty,3]")
    assert answers_equivalent("numeric", "1,000", "1000.0")
    assert not answers_equivalent("numeric", "18", "81")
    assert answers_equivalent("choice", "(B)", "B")
    assert not answers_equivalent("choice", "B", "C")
    assert not answers_equivalent("math", None, None)          # two missing answers are not a vote
    with pytest.raises(ValueError, match="'essay'"):
        answers_equivalent("essay", "a", "a")


def test_worker_reports_errors_memory_and_timeouts():
    worker = Worker(memory_limit_bytes=1 << 30)
    try:
        assert worker.call("math", "hypot", (3, 4), 30) == 5.0
        assert worker.call("builtins", "print", ("stdout belongs to the protocol",), 30) is None
        with pytest.raises(WorkerError, match="math domain error"):
            worker.call("math", "sqrt", (-1,), 30)
        with pytest.raises(WorkerError, match="MemoryError"):      # the address-space cap holds
            worker.call("builtins", "bytearray", (2 << 30,), 30)
        with pytest.raises(GradingTimeout, match="0.5 s"):
            worker.call("time", "sleep", (60,), 0.5)
        assert worker.call("operator", "add", (2, 3), 30) == 5      # a fresh process after the kill
        assert worker.starts == 2
        with pytest.raises(ValueError, match="timeout_s=0"):
            worker.call("operator", "add", (2, 3), 0)
    finally:
        worker.close()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split()[:2] == ["State:", "Z"] for line in f)   # a zombie nobody reaps yet
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_worker_dies_with_its_parent():
    # The parent starts its worker from a short-lived thread (which must not take the worker with it),
    # gives it an hour of work, and is then killed: the worker must not outlive it.
    script = (
        "import sys, threading, time\n"
        "from tts_prune.tts.sandbox import Worker\n"
        "w = Worker()\n"
        "t = threading.Thread(target=lambda: w.call('operator', 'add', (1, 2), 60)); t.start(); t.join()\n"
        "print(w.pid, flush=True)\n"
        "threading.Thread(target=lambda: w.call('time', 'sleep', (3600,), 3600), daemon=True).start()\n"
        "time.sleep(3600)\n")
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": root})
    try:
        pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert not _gone(pid), "the worker died with the thread that started it"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 60
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"worker {pid} outlived its killed parent")
