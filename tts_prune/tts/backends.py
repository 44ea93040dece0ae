"""One backend interface for budget sweeps, and the model artifact every backend is built from.

A ``Backend`` has ``tokenizer``, ``fingerprint`` (of the weights that generate), ``chunk_rows`` (rows
per store flush, so a crash loses at most one chunk) and ``sweep(prompts, seeds, budgets, fmt, config)
-> list[Generation]``. ``BACKENDS`` maps a name to a builder ``(model_or_path, name, options) -> Backend``.

A ``ModelArtifact`` is a local directory of safetensors plus the fingerprint of its weights. vLLM only
ever loads artifacts: an in-memory (pruned) model is saved first (the directory 03-pruning wrote is reused
when its ``pruning_recipe.json`` names the same fingerprint), its HF copy is moved off the accelerator,
and vLLM loads that directory. So the fingerprint in a record is always that of the weights that made it.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import paths
from ..models.runtime import free_accelerator
from .generation import sweep_batch
from .protocol import DecodingConfig, Generation, eos_ids
from .formats import ThinkingFormat

ARTIFACT_FILE = "tts_prune_artifact.json"  # {"fingerprint": ...} beside weights this module saved


class Backend(Protocol):
    name: str
    tokenizer: object
    fingerprint: str
    chunk_rows: int

    def sweep(self, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
              config: DecodingConfig) -> list[Generation]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelArtifact:
    """A local safetensors directory and the fingerprint (``model_fingerprint``) of the weights in it."""

    path: Path
    fingerprint: str
    eos_token_ids: tuple[int, ...] = ()  # every EOS of the generation config (vLLM stops on all of them)


def recorded_fingerprint(directory: Path) -> str | None:
    """The fingerprint a directory declares: 03-pruning's recipe or this module's artifact file (else None)."""
    directory = Path(directory)
    for name, key in (("pruning_recipe.json", "pruned_fingerprint"), (ARTIFACT_FILE, "fingerprint")):
        file = directory / name
        if file.is_file():
            value = json.loads(file.read_text()).get(key)
            if value:
                return str(value)
    return None


def _eos_of(generation_config) -> tuple[int, ...]:
    return tuple(sorted(eos_ids(getattr(generation_config, "eos_token_id", None))))


def save_artifact(model, tokenizer, root: Path | None = None, reuse: Path | None = None,
                  fingerprint: str | None = None) -> ModelArtifact:
    """The artifact of an in-memory model: ``reuse`` (e.g. 03-pruning's directory) when it declares the same
    fingerprint, else ``root/<fingerprint>`` (default ``paths.artifacts_dir()``: the study's output tree when a
    study runs, else ``models/artifacts``), written once and safely shared (``_publish``)."""
    from ..models.loading import model_fingerprint

    fingerprint = fingerprint or model_fingerprint(model)
    eos = _eos_of(getattr(model, "generation_config", None))
    candidates = [Path(reuse)] if reuse else []
    source = getattr(model.config, "_name_or_path", "")
    if source and Path(source).is_dir():
        candidates.append(Path(source))
    for directory in candidates:
        if recorded_fingerprint(directory) == fingerprint and (directory / "config.json").is_file():
            return ModelArtifact(directory, fingerprint, eos)
    target = Path(root or paths.artifacts_dir()) / fingerprint
    if recorded_fingerprint(target) != fingerprint:
        def write(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            (folder / ARTIFACT_FILE).write_text(json.dumps({"fingerprint": fingerprint, "source": source}, indent=1))

        _publish(target, fingerprint, write)
    return ModelArtifact(target, fingerprint, eos)


def _publish(target: Path, fingerprint: str, write) -> None:
    """``write(folder)`` into a temporary directory beside ``target``, then rename it into place: readers never
    see a half-written ``target``. Writers racing for it (dense cells of one model on many GPUs or Ray workers,
    on one shared file system) each write their own copy; the first rename wins, a later one fails because the
    target exists, and that writer drops its copy and uses the winner's (same fingerprint, same weights). A
    ``target`` left by an older in-place writer without the fingerprint is moved aside and replaced."""
    paths.ensure(target.parent)
    folder = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write(paths.ensure(folder))
        if target.exists() and recorded_fingerprint(target) != fingerprint:
            stale = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.stale"
            try:
                os.rename(target, stale)
                shutil.rmtree(stale, ignore_errors=True)
            except FileNotFoundError:  # another writer moved it first
                pass
        try:
            os.rename(folder, target)  # atomic; fails on an existing non-empty directory
        except OSError:
            if recorded_fingerprint(target) != fingerprint:
                raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # ours, when another writer's copy won (or the write failed)


def release(model) -> None:
    """Move an HF model off the accelerator so another engine (vLLM) can have its memory."""
    if next(model.parameters()).device.type != "cpu":
        model.to("cpu")
        free_accelerator()


def resolve_artifact(reference: str) -> ModelArtifact:
    """The artifact of a model reference: an embedded name, a local directory, or a hub id (its snapshot).

    A directory without a declared fingerprint is loaded once with transformers, in the dtype it stores (as vLLM's
    ``dtype="auto"`` does), to compute it."""
    from transformers import GenerationConfig

    from ..models.embedded import EMBEDDED, embedded_model_dir

    reference = str(reference)
    if reference in EMBEDDED:
        directory = embedded_model_dir(reference)
    elif Path(reference).expanduser().is_dir():
        directory = Path(reference).expanduser()
    elif Path(reference).suffix == ".gguf":
        raise ValueError(f"model {reference!r} is a GGUF file; vLLM needs safetensors: load it with "
                         "tts_prune.load_model and pass the (model, tokenizer) pair, which is saved first")
    else:
        from huggingface_hub import snapshot_download

        directory = Path(snapshot_download(reference))
    fingerprint = recorded_fingerprint(directory)
    if fingerprint is None:
        from transformers import AutoModelForCausalLM

        from ..models.loading import model_fingerprint

        model = AutoModelForCausalLM.from_pretrained(directory, dtype="auto")
        fingerprint = model_fingerprint(model)
        del model
    try:
        eos = _eos_of(GenerationConfig.from_pretrained(directory))
    except OSError:  # no generation_config.json
        eos = ()
    return ModelArtifact(directory, fingerprint, eos)


class TransformersBackend:
    """The transformers decode loop (``generation.sweep_batch``) on an in-memory model."""

    name = "transformers"

    def __init__(self, model, tokenizer, fingerprint: str | None = None, chunk_rows: int = 8, owned: bool = False):
        from ..models.loading import model_fingerprint

        self.model, self.tokenizer = model, tokenizer
        self.fingerprint = fingerprint or model_fingerprint(model)
        self.chunk_rows = int(chunk_rows)
        self.owned = owned  # loaded by this backend (from a reference): freed on close

    def sweep(self, prompts, seeds, budgets, fmt, config) -> list[Generation]:
        return sweep_batch(self.model, self.tokenizer, prompts, seeds, budgets, fmt, config)

    def close(self) -> None:
        """Drop the model; one this backend loaded itself is freed (a caller's pair stays the caller's)."""
        self.model = None
        if self.owned:
            free_accelerator()


def _transformers(model_or_path, options: dict) -> TransformersBackend:
    from ..models.loading import load_model

    if isinstance(model_or_path, (tuple, list)):
        model, tokenizer = model_or_path
        return TransformersBackend(model, tokenizer, chunk_rows=options.get("batch_size", 8))
    model, tokenizer = load_model(model_or_path, dtype=options.get("dtype", "auto"))
    return TransformersBackend(model, tokenizer, chunk_rows=options.get("batch_size", 8), owned=True)


def _vllm(model_or_path, options: dict):
    from transformers import AutoTokenizer

    from .vllm_backend import VLLMBackend

    options = dict(options)
    options.pop("batch_size", None)
    artifact_root, reuse = options.pop("artifact_root", None), options.pop("model_dir", None)
    if isinstance(model_or_path, (tuple, list)):
        from ..models.loading import model_fingerprint

        model, tokenizer = model_or_path
        fingerprint = model_fingerprint(model)

        def prepare() -> ModelArtifact:
            artifact = save_artifact(model, tokenizer, root=artifact_root, reuse=reuse, fingerprint=fingerprint)
            release(model)
            return artifact

        eos = _eos_of(getattr(model, "generation_config", None))
        return VLLMBackend(fingerprint, tokenizer, eos, prepare, **options)
    artifact = resolve_artifact(model_or_path)
    tokenizer = AutoTokenizer.from_pretrained(artifact.path)  # the files vLLM loads
    return VLLMBackend(artifact.fingerprint, tokenizer, artifact.eos_token_ids, lambda: artifact, **options)


BACKENDS = {"transformers": _transformers, "vllm": _vllm}


def pick_backend(backend: str) -> str:
    """``auto``: vLLM when CUDA and vLLM are both present, else transformers. Both evaluate the same weights:
    an in-memory model reaches vLLM through its saved artifact, never through its name."""
    choices = ("auto", *BACKENDS)
    if backend not in choices:
        raise ValueError(f"backend {backend!r} is unknown; use one of {choices}")
    if backend != "auto":
        return backend
    import importlib.util

    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


def open_backend(backend: str, model_or_path, **options) -> Backend:
    """A ready backend for ``model_or_path`` (a ``(model, tokenizer)`` pair or a model reference).

    Options: ``batch_size`` (transformers rows per chunk), ``dtype``; for vLLM ``tensor_parallel_size``,
    ``data_parallel_size``, ``chunk_rows``, ``model_dir`` (03-pruning's directory to reuse),
    ``artifact_root``, ``engine`` (an engine object, for tests) and any ``vllm.LLM`` keyword.
    """
    return BACKENDS[pick_backend(backend)](model_or_path, options)
