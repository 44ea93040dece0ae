"""GGUF files as plain Hugging Face models: dequantized on load, with the quantizer dropped so they save."""
from __future__ import annotations

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
