"""Notebook runs start their kernel over IPC: no "running over TCP without encryption" warning on every run's
stderr, while what the kernel really says (its own stderr, a failing cell) still comes through."""
import nbformat
import papermill
import pytest

from tts_prune.study.execute import execute_notebook, quiet_kernel_manager

TCP_WARNING = "without encryption"


def notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_a_run_is_quiet_about_transport_and_keeps_the_kernels_own_stderr(tmp_path, capfd):
    source = notebook(tmp_path / "in.ipynb", "import os\nos.write(2, b'kernel says: real warning\\n')",
                      "print(6 * 7)")
    execute_notebook(source, tmp_path / "out.ipynb", cwd=tmp_path, progress_bar=False)
    err = capfd.readouterr().err
    assert TCP_WARNING not in err
    assert "kernel says: real warning" in err  # the kernel's stderr is not filtered
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert cells[1].outputs[0]["text"] == "42\n"
    assert quiet_kernel_manager()().transport == "ipc"


def test_a_failing_cell_still_fails_with_papermills_error(tmp_path):
    source = notebook(tmp_path / "in.ipynb", "raise ValueError('a real error')")
    with pytest.raises(papermill.PapermillExecutionError, match="a real error"):
        execute_notebook(source, tmp_path / "out.ipynb", cwd=tmp_path, progress_bar=False)
