"""Loading any causal LM: a hub id, a local directory, a ``.gguf`` file, or an embedded default.

Embedded defaults (``tts_prune.models.embedded``) make the kit run offline; ``model_fingerprint`` is
the provenance hash that recipes and result records carry.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .dtypes import DTYPES
from .embedded import EMBEDDED, ModelLoadError, embedded_model_dir
from .gguf import load_gguf


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"device {device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error




def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto`` means fp32 on CPU (bf16 matmuls are slow and lossy there) and bf16 on GPUs."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not supported; use 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


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
        model, tokenizer = load_gguf(path, torch_dtype)
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
