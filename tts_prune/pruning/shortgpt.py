"""ShortGPT: "ShortGPT: Layers in Large Language Models are More Redundant Than You Expect"
(Men et al., arXiv 2403.03853). Structured pruning that removes whole decoder blocks.

Block Influence BI_l = mean over tokens of 1 - cos(h_in, h_out) of block l (dense model, calibration
tokens); the ``round(s x L)`` blocks with the lowest BI are removed. The remaining blocks are renumbered
(``self_attn.layer_idx`` and any other ``layer_idx``) so the KV cache indexes them correctly, and the
config's ``num_hidden_layers`` (and ``layer_types``) shrink accordingly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .calibration import walk_blocks
from ..models.layers import decoder_layers, decoder_stack

_LAYER_INDEX_ATTRS = ("layer_idx", "layer_index", "layer_id")
_PER_LAYER_CONFIG = ("layer_types",)


def block_influence_from(h_in: torch.Tensor, h_out: torch.Tensor) -> tuple[float, int]:
    """Sum over tokens of 1 - cos(h_in, h_out) and the token count; inputs (..., hidden)."""
    cos = torch.nn.functional.cosine_similarity(h_in.float(), h_out.float(), dim=-1)
    return float((1 - cos).sum()), cos.numel()


@torch.no_grad()
def block_influence(model: nn.Module, tokenizer=None, calibration: torch.Tensor | str | None = None, *,
                    batch_size: int = 1, show_progress: bool = True, **calibration_kwargs) -> list[float]:
    """Block Influence of each decoder block of the dense model: list[float] of length L."""
    from .allocation import _ids

    ids = _ids(tokenizer, calibration, calibration_kwargs)
    scores = []
    for step in walk_blocks(model, ids, batch_size=batch_size, show_progress=show_progress, desc="block influence"):
        step.outputs = step.run()
        total, count = 0.0, 0
        for h_in, h_out in zip(step.inputs, step.outputs):
            s, n = block_influence_from(h_in, h_out)
            total, count = total + s, count + n
        scores.append(total / count)
    return scores


def layers_to_remove(scores: Sequence[float], sparsity: float) -> list[int]:
    """Indices of the ``round(sparsity x L)`` lowest-BI blocks (ties: the earlier block first), sorted."""
    count = round(sparsity * len(scores))
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    return sorted(order[:count])


def remove_layers(model: nn.Module, indices: Sequence[int]) -> nn.Module:
    """Remove decoder blocks in place, renumber the kept ones and update the config; returns the model."""
    parent, attr = decoder_stack(model)
    layers = getattr(parent, attr)
    drop = set(indices)
    bad = [i for i in drop if not 0 <= i < len(layers)]
    if bad or len(drop) >= len(layers):
        raise ValueError(f"cannot remove blocks {sorted(drop)} of a {len(layers)}-block model; give indices in "
                         f"[0, {len(layers) - 1}] and keep at least one block")
    kept = [i for i in range(len(layers)) if i not in drop]
    setattr(parent, attr, nn.ModuleList([layers[i] for i in kept]))
    for new, block in enumerate(decoder_layers(model)):
        for module in block.modules():
            for name in _LAYER_INDEX_ATTRS:
                if isinstance(getattr(module, name, None), int):
                    setattr(module, name, new)
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if isinstance(getattr(config, key, None), int):
                setattr(config, key, len(kept))
        for key in _PER_LAYER_CONFIG:
            value = getattr(config, key, None)
            if isinstance(value, (list, tuple)) and len(value) == len(layers):
                setattr(config, key, [value[i] for i in kept])
    return model
