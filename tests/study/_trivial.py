"""Trivial stand-ins for 03/04/05 whose kernels only read and write small JSON files (seconds per cell).

03 saves ``pruning_recipe.json`` with a ``pruned_fingerprint`` (``WEIGHTS-<method>``) in ``model_out``
and fails on purpose while a file ``FAIL-<method>`` sits in the study's models folder; 04 records
what it read from ``pruned_model``; 05 prints.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

_PARAMS = '''model: str = "m"  # model
method: str = "wanda"  # method
allocation: str = "uniform"  # allocation
sparsity: float = 0.2  # sparsity
benchmark: str = "b"  # benchmark
model_out: str = ""  # where 03 saves
pruned_model: str = ""  # what 04 reads
artifacts_dir: str = ""  # where to write'''
PRUNE = '''import json, pathlib
assert not pathlib.Path(model_out).parents[2].joinpath(f"FAIL-{method}").exists(), "this cell fails on purpose"
pathlib.Path(model_out).mkdir(parents=True, exist_ok=True)
pathlib.Path(model_out, "pruning_recipe.json").write_text(json.dumps({"pruned_fingerprint": f"WEIGHTS-{method}"}))'''
_EVALUATE = '''import json, pathlib
read = json.loads(pathlib.Path(pruned_model, "pruning_recipe.json").read_text()) if method != "dense" else {}
pathlib.Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(artifacts_dir, "read.json").write_text(json.dumps(read))'''
_REPORT = '''print("report")'''


def trivial_notebooks(folder: Path, prune_body: str = PRUNE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, body in (("03-pruning", prune_body), ("04-tts-scaling", _EVALUATE), ("05-report", _REPORT)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        params = nbformat.v4.new_code_cell(_PARAMS)
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        for i, cell in enumerate(nb.cells):
            cell.id = f"cell-{i}"  # fixed ids: rewriting an unchanged notebook keeps its bytes (and hash)
        nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder
