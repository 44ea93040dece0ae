"""``use_threads``: "auto" is the process's CPU affinity, numbers are taken as given, the rest is refused."""
import os
from pathlib import Path

import pytest
import torch

import tts_prune
from tts_prune.cli import main
from tts_prune.models.runtime import available_cores, resolve_threads, use_threads
from tts_prune.study.grid import StudyConfig


def test_auto_is_the_affinity_mask(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert available_cores() == len(os.sched_getaffinity(0))
    assert resolve_threads("auto") == resolve_threads(" AUTO ") == resolve_threads(None) == available_cores()


@pytest.mark.parametrize("value, expected", [("1", 1), ("999", None), ("0", None), ("", None), ("4,2", None)])
def test_auto_respects_an_omp_num_threads_allocation(monkeypatch, value, expected):
    # Ray and HPC wrappers allocate CPUs through OMP_NUM_THREADS without pinning; only a positive integer counts.
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert resolve_threads("auto") == (expected or len(os.sched_getaffinity(0)))


def test_numbers_and_their_strings():
    assert resolve_threads(3) == resolve_threads("3") == resolve_threads(3.0) == 3


@pytest.mark.parametrize("bad", [0, -2, "0", "two", 1.5, "1.5", True, ""])
def test_bad_values_name_the_value_and_the_fix(bad):
    with pytest.raises(ValueError, match=r"threads=.*'auto'.*positive integer"):
        resolve_threads(bad)


def test_use_threads_sets_torch_and_returns_the_count():
    before = torch.get_num_threads()
    try:
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
        assert use_threads("auto") == available_cores() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_affinity_of_a_child_process_is_respected():
    # A process pinned to one core by its launcher (taskset, cpuset) sees one core under "auto".
    import subprocess
    import sys

    code = ("import os; os.environ.pop('OMP_NUM_THREADS', None); "
            "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from tts_prune.models.runtime import use_threads; print(use_threads('auto'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(tts_prune.__file__).parents[1])}).stdout
    assert out.strip() == "1"


def test_cli_refuses_a_bad_thread_count_and_restores_the_callers_threads(capsys):
    before = torch.get_num_threads()
    assert main(["info", "--model", "x", "--threads", "none"]) == 2
    assert "threads='none'" in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_study_params_threads_are_checked_on_construction():
    assert StudyConfig(name="s", models=("m",), params={"threads": "auto"}).params["threads"] == "auto"
    with pytest.raises(ValueError, match=r"params.threads=0.*'auto' or a positive integer"):
        StudyConfig(name="s", models=("m",), params={"threads": 0})


def test_study_cells_default_to_auto_and_keep_an_explicit_count(tmp_path):
    from tts_prune.study.grid import expand

    plain = StudyConfig(name="s", models=("m",), notebooks=("01-calibration",))
    pinned = StudyConfig(name="s", models=("m",), notebooks=("01-calibration",), params={"threads": 1})
    assert {c.parameters["threads"] for c in expand(plain, reports=tmp_path)} == {"auto"}
    assert {c.parameters["threads"] for c in expand(pinned, reports=tmp_path)} == {1}
