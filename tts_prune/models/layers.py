"""Generic discovery of decoder blocks and their prunable linear layers.

One implementation serves every decoder-only family transformers ships (Llama, Qwen2/3, Mistral,
Gemma2, Phi3, GPT-2, ...): no per-family files. The decoder stack is the ``nn.ModuleList`` whose
length equals ``config.num_hidden_layers`` (or ``n_layer``), and a block's prunable layers are its
``nn.Linear`` modules, plus GPT-2's ``Conv1D`` (a linear layer stored transposed).
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

try:  # GPT-2-style models store linears as Conv1D with weight (in_features, out_features)
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - very old transformers
    Conv1D = ()


class NoDecoderLayersError(ValueError):
    """Raised when a model has no recognisable stack of decoder blocks."""


def _num_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def decoder_stack(model: nn.Module) -> tuple[nn.Module, str]:
    """Return ``(parent, attribute)`` such that ``getattr(parent, attribute)`` is the ModuleList of blocks.

    Knowing the parent lets structured pruning (ShortGPT) replace the list with a shorter one.
    """
    expected = _num_layers(model)
    candidates = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        kinds = {type(child) for child in module}
        if len(kinds) != 1:
            continue
        # Decoder blocks contain linears; lists of plain linears (e.g. heads) do not count.
        if isinstance(module[0], (nn.Linear, *((Conv1D,) if Conv1D else ()))):
            continue
        if not any(isinstance(m, nn.Linear) or (Conv1D and isinstance(m, Conv1D)) for m in module[0].modules()):
            continue
        candidates.append((name, module))
    if expected is not None:
        matching = [(n, m) for n, m in candidates if len(m) == expected]
        if matching:
            candidates = matching
    if not candidates:
        hint = f" (config says {expected} layers)" if expected else ""
        raise NoDecoderLayersError(
            f"{type(model).__name__} has no stack of decoder blocks{hint}: expected an nn.ModuleList of "
            "identical blocks containing linear layers, as in transformers' *ForCausalLM models "
            "(model.model.layers, transformer.h). Pass a decoder-only causal language model."
        )
    # The shallowest (outermost) list is the main decoder stack; nested lists are sub-parts.
    name, _ = min(candidates, key=lambda item: (item[0].count("."), -len(item[1])))
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's decoder blocks, in order (``model.model.layers`` for Llama-like models)."""
    parent, attr = decoder_stack(model)
    return getattr(parent, attr)


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or bool(Conv1D) and isinstance(module, Conv1D)


def prunable_linears(block: nn.Module) -> dict[str, nn.Module]:
    """Linear sub-modules of one decoder block, by qualified name (``self_attn.q_proj``, ``mlp.down_proj``).

    Embeddings and the LM head live outside the blocks and are therefore never returned.
    """
    return {name: module for name, module in block.named_modules() if name and is_linear(module)}


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as a ``(out_features, in_features)`` tensor sharing storage with the module.

    ``nn.Linear`` already stores it that way; ``Conv1D`` stores the transpose, so a view is returned and
    in-place masking of the view masks the module.
    """
    if isinstance(module, nn.Linear):
        return module.weight.data
    if Conv1D and isinstance(module, Conv1D):
        return module.weight.data.t()
    raise TypeError(f"{type(module).__name__} is not a linear layer; expected nn.Linear or Conv1D")


def layer_summary(model: nn.Module) -> pd.DataFrame:
    """One row per decoder block: its class, linear layers and parameter counts."""
    rows = []
    for index, block in enumerate(decoder_layers(model)):
        linears = prunable_linears(block)
        rows.append({
            "layer": index,
            "block": type(block).__name__,
            "linears": ", ".join(linears),
            "params": sum(p.numel() for p in block.parameters()),
            "prunable_params": sum(weight_matrix(m).numel() for m in linears.values()),
        })
    return pd.DataFrame(rows)
