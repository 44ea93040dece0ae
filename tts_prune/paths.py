"""Every path the kit reads or writes, in one place.

Inputs that never change by hand live under ``data/``; everything a run produces (cached
embedded models, pruned models, results, executed notebooks) goes to git-ignored folders.
``TTS_PRUNE_HOME`` moves the whole output tree (for example onto a big disk on a GPU machine).
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _project_root() -> Path:
    # A source checkout has pyproject.toml beside the package; an installed wheel does not,
    # and then the current directory is the natural home for outputs.
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path.cwd()


ROOT = Path(os.environ.get("TTS_PRUNE_HOME", _project_root())).resolve()

DATA_DIR = ROOT / "data"
BENCHMARK_DIR = DATA_DIR / "benchmarks"        # filled by `make data`, git-ignored
MODEL_CONFIG_DIR = PACKAGE_DIR.parent / "data" / "model_configs"  # shipped config.json files (tts-prune plan)
SHARED_BENCHMARK_DIR = ROOT.parent / "shared" / "data" / "benchmarks"
FIGURES_DIR = ROOT / "figures"
NOTEBOOKS_DIR = ROOT / "notebooks"
MODELS_DIR = ROOT / "models"                   # cached embedded and pruned models, git-ignored
RESULTS_DIR = ROOT / "results"                 # evaluation record shards, git-ignored
REPORTS_DIR = ROOT / "reports"                 # executed notebooks and HTML, git-ignored


ARTIFACTS_ENV = "TTS_PRUNE_ARTIFACTS"  # set by a study for each cell: its output tree's model artifacts


def artifacts_dir() -> Path:
    """Where saved copies of in-memory models (the directories vLLM loads) go: ``$TTS_PRUNE_ARTIFACTS`` when
    set (a study sets it to ``<its models folder>/artifacts``, under ``--out``), else ``models/artifacts``."""
    return Path(os.environ.get(ARTIFACTS_ENV) or MODELS_DIR / "artifacts")


def ensure(path: Path) -> Path:
    """Create ``path`` (a directory) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a (optionally gzipped) JSONL file: the project's one JSONL reader (benchmarks, their train
    pools, calibration corpora, generation records); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist; for the bundled benchmarks run `make data` "
                                "(or `tts-prune data`), else pass an existing file")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not UTF-8 ({error}); re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: bad JSON ({error.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a JSON {type(row).__name__}, expected an object with fields")
            rows.append(row)
    return rows
