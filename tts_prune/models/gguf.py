"""GGUF files as plain Hugging Face models: dequantized on load, with the quantizer dropped so they save."""
from __future__ import annotations

import struct
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


class ModelLoadError(ValueError):
    """A model reference that cannot be resolved or loaded; the message says what is accepted."""


def load_gguf(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a ``.gguf`` model and its tokenizer, dequantized to ``dtype``."""
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


# ------------------------------------------------------------------------- metadata without the weights
# GGUF layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic "GGUF", uint32 version,
# uint64 tensor count, uint64 key-value count, the key-value pairs (tokenizer and chat template among
# them), then the tensor infos and the aligned tensor data. Everything a tokenizer needs sits in the
# key-value section at the front, so the first bytes of a (split) file are enough to rebuild it.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType -> bytes
_STRING, _ARRAY = 8, 9
_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor count, key-value count


class _Truncated(Exception):
    """The bytes end inside the key-value section."""


def _skip_value(data: memoryview, offset: int, value_type: int) -> int:
    """Offset just past one value of ``value_type`` starting at ``offset``."""
    if value_type in _SCALAR_SIZES:
        return offset + _SCALAR_SIZES[value_type]
    if value_type == _STRING:
        (length,) = struct.unpack_from("<Q", data, offset)
        return offset + 8 + length
    if value_type == _ARRAY:
        item_type, count = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if item_type in _SCALAR_SIZES:
            return offset + count * _SCALAR_SIZES[item_type]
        for _ in range(count):
            offset = _skip_value(data, offset, item_type)
        return offset
    raise ValueError(f"unknown GGUF value type {value_type} at byte {offset}")


def _metadata_end(data: memoryview) -> int:
    """Byte offset where the key-value section of a GGUF file ends."""
    _, _, _, kv_count = _HEADER.unpack_from(data, 0)
    offset = _HEADER.size
    try:
        for _ in range(kv_count):
            offset = _skip_value(data, offset, _STRING)  # the key
            (value_type,) = struct.unpack_from("<I", data, offset)
            offset = _skip_value(data, offset + 4, value_type)
            if offset > len(data):
                raise _Truncated
    except struct.error as error:
        raise _Truncated from error
    return offset


def write_metadata_only(source: Path, target: Path) -> Path:
    """Write ``target``: a valid GGUF with the key-value metadata of ``source`` and no tensors.

    ``source`` may be only the first bytes of a GGUF (the first chunk of a split file): only the
    key-value section is read. The result loads with ``AutoTokenizer.from_pretrained(..., gguf_file=)``
    in a second instead of dequantizing the whole model.
    """
    with source.open("rb") as handle:
        head = handle.read(_HEADER.size)
        if len(head) < _HEADER.size or head[:4] != b"GGUF":
            raise ModelLoadError(f"{source} does not start with a GGUF header (magic {head[:4]!r}, expected b'GGUF')")
        size = 1 << 24
        while True:  # read more until the key-value section is complete (Qwen2.5's is ~7 MB)
            handle.seek(0)
            data = handle.read(size)
            try:
                end = _metadata_end(memoryview(data))
                break
            except _Truncated:
                if len(data) < size:
                    raise ModelLoadError(
                        f"{source} ends ({len(data)} bytes) inside the GGUF key-value section; "
                        "the file or first chunk is truncated"
                    ) from None
                size *= 4
    magic, version, _, kv_count = _HEADER.unpack_from(data, 0)
    body = _HEADER.pack(magic, version, 0, kv_count) + data[_HEADER.size:end]
    padding = -len(body) % 32  # GGUF's default alignment for the (empty) data section
    target.write_bytes(body + b"\x00" * padding)
    return target
