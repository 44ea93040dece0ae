"""environment.yml (conda) must declare what pyproject.toml declares."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _name(spec: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(spec).name).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(d.replace(" ", "").startswith("python=3.11") for d in conda)
    assert "-e .[dev,cluster]" in pip, "the conda env must install the package itself with its dev and cluster extras"
    declared = {_name(s): Requirement(s).specifier for s in pip if not s.startswith("-")}
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["dev"] + extras["cluster"] + extras["embedded"]
    for spec in wanted:
        req = Requirement(spec)
        assert _name(spec) in declared, f"{req.name} is in pyproject.toml but not in environment.yml"
        assert declared[_name(spec)] == req.specifier, f"{req.name}: {declared[_name(spec)]} != {req.specifier}"
    extra = set(declared) - {_name(s) for s in wanted}
    assert not extra, f"environment.yml declares packages pyproject.toml does not: {sorted(extra)}"


def test_torch_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [Requirement(s) for s in project["dependencies"] if Requirement(s).name == "torch"]
    assert torch and str(torch[0].specifier) == "==2.13.0"


def test_make_setup_installs_the_extras_the_tests_need():
    # CI runs `make test`, whose setup must install what the tests import: dev (papermill, ...) and cluster (ray).
    makefile = (ROOT / "Makefile").read_text()
    assert 'pip install -q -e ".[dev,cluster]"' in makefile


def _datasets_offline_under_make(env_overrides: dict) -> bool:
    """`datasets.config.HF_DATASETS_OFFLINE` in a Python that make starts with the Makefile's exported
    environment (a throw-away rule added with --eval; the Makefile itself is unchanged)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                                             "TRANSFORMERS_OFFLINE", "MAKEFLAGS", "MFLAGS")}
    env.update(env_overrides)
    probe = "import datasets.config as c; print(c.HF_DATASETS_OFFLINE)"
    rule = f"_probe-datasets-offline: ; @{sys.executable} -c '{probe}'"
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "--eval", rule, "_probe-datasets-offline"],
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert out[-1] in ("True", "False"), out
    return out[-1] == "True"


def test_make_offline_by_default_and_datasets_follow_hf_hub_offline():
    # datasets lets HF_DATASETS_OFFLINE win over HF_HUB_OFFLINE: the Makefile must not pin it to 1, or
    # `HF_HUB_OFFLINE=0 make study STUDY=studies/paper.yaml` cannot load allenai/c4.
    assert _datasets_offline_under_make({}) is True
    assert _datasets_offline_under_make({"HF_HUB_OFFLINE": "0"}) is False
    assert _datasets_offline_under_make({"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "1"}) is True  # explicit wins
