"""The package's shape: a light top-level import, no import cycles, every public name resolvable."""
import ast
import subprocess
import sys
from pathlib import Path

import tts_prune

PACKAGE = Path(tts_prune.__file__).resolve().parent
SUBPACKAGES = ("models", "pruning", "tts", "report", "study")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the tts_prune modules it imports (top-level or inside functions), from the source."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
                targets.update(names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tts_prune"):
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("tts_prune"))
    return edges


def test_import_is_light():
    code = "import sys, tts_prune; import tts_prune.models, tts_prune.pruning, tts_prune.tts, tts_prune.study; " \
           "print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_no_import_cycles():
    edges = _imports()
    known = set(edges)
    graph = {a: {b for b in bs if b in known and b != "tts_prune" and b != a} for a, bs in edges.items()}

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    cycles = sorted(a for a in graph if a in reachable(a))
    assert cycles == []


def _layer(module: str) -> int | None:
    """Rank of a module's subpackage in ``SUBPACKAGES`` (lowest first); None for top-level modules."""
    parts = module.split(".")
    return SUBPACKAGES.index(parts[1]) if len(parts) > 1 and parts[1] in SUBPACKAGES else None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer up to a higher one, as "importer -> imported"."""
    return sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs
                  if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a))


def test_layers_import_only_downwards():
    # models < pruning < tts < report < study: a lower layer never imports a higher one, at module level or
    # inside a function (a lazy import is still a dependency)
    assert upward_imports(_imports()) == []


def test_layer_check_sees_relative_absolute_and_function_level_imports(tmp_path):
    sources = {"models/a.py": "def f():\n    from ..tts import evaluation\n",
               "pruning/b.py": "import tts_prune.study.grid\n",
               "tts/c.py": "from tts_prune.report.plots import x\nfrom ..models import loading\n",
               "report/d.py": "from . import plots\nfrom ..tts.stats import accuracy_table\n"}
    for name, text in sources.items():
        (tmp_path / "tts_prune" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tts_prune" / name).write_text(text)
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "tts_prune"
    try:
        found = upward_imports(_imports())
    finally:
        PACKAGE = saved
    assert found == ["tts_prune.models.a -> tts_prune.tts", "tts_prune.pruning.b -> tts_prune.study.grid",
                     "tts_prune.tts.c -> tts_prune.report.plots"]


def test_subpackages_and_layout():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(SUBPACKAGES)
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "cli.py", "paths.py"]


def test_public_api_resolves():
    for name in tts_prune.__all__:
        assert getattr(tts_prune, name) is not None, name


def test_cli_commands_resolve():
    import importlib

    from tts_prune.cli import COMMANDS

    for module_name, _ in COMMANDS.values():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run)


def test_packaging_metadata_is_current(tmp_path):
    """`make setup` builds the package metadata with setuptools: no deprecation warning (the SPDX `license` string,
    not the old TOML table), and the licence text ships with it."""
    root = PACKAGE.parent
    code = ("import sys; from setuptools import build_meta; "
            f"print(build_meta.prepare_metadata_for_build_editable({str(tmp_path)!r}))")
    run = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Deprecat" not in run.stdout + run.stderr, run.stderr
    metadata = (tmp_path / run.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert (root / "LICENSE").read_text().startswith("MIT License")
