"""Every path the kit reads or writes, in one place.

Inputs that never change by hand live under ``data/``; everything a run produces (cached
embedded models, pruned models, results, executed notebooks) goes to git-ignored folders.
``TTS_PRUNE_HOME`` moves the whole output tree (for example onto a big disk on a GPU machine).
"""
from __future__ import annotations

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
