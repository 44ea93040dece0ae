"""ShortGPT: "ShortGPT: Layers in Large Language Models are More Redundant Than You Expect"
(Men et al., arXiv 2403.03853). Structured pruning that removes whole decoder blocks.

Block Influence BI_l = 1 - cos(h_in, h_out) of block l per token, on the dense model; the blocks with the
lowest BI are removed: ``shortgpt_layers`` of them (the authors' ``--remove_n_layers N``, arXiv 2604.25098's
grid of 1-3 blocks) or ``round(s x L)`` for a sparsity s. The remaining blocks are renumbered
(``self_attn.layer_idx`` and any other ``layer_idx``) so the KV cache indexes them correctly, and the config's
``num_hidden_layers`` (and ``layer_types``) shrink accordingly.

Held against the authors' ``Modified-Layer-Pruning-Harms-Inference-Scaling`` (``lib/prune.py``
``prune_shortgpt`` / ``block_influence``, read 2026-12-01), what is the same and what differs:

* same: 1 - cos (their ``angular=False`` default, not the angular distance arccos/pi), per token between a
  block's input and its output hidden state (before the final norm), the mean over each sample's tokens, then
  the mean over samples (so samples of different lengths weigh equally, as theirs at ``--batch_size 1``);
  samples are given one by one without padding when they are a list (their calibration text is).
* differs: theirs hooks the *inputs* of blocks and takes block l's output as block l+1's input, so the last
  block gets no score and can never be removed; ours scores every block (ShortGPT's paper does too). Ours
  computes the cosine in float32 (theirs in the model's fp16, where a norm above 65504 overflows and a NaN
  similarity becomes 0.5); a zero vector gives cos 0 here (0.5 there).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.layers import decoder_layers, decoder_stack

_LAYER_INDEX_ATTRS = ("layer_idx", "layer_index", "layer_id")
_PER_LAYER_CONFIG = ("layer_types",)


class _StopAfterLastBlock(Exception):
    """Private signal: every block's score is taken, so the final norm and the LM head need not run."""


def block_influence_from(h_in: torch.Tensor, h_out: torch.Tensor) -> tuple[float, int]:
    """Sum over tokens of 1 - cos(h_in, h_out) and the token count; inputs (..., hidden)."""
    cos = torch.nn.functional.cosine_similarity(h_in.float(), h_out.float(), dim=-1)
    return float((1 - cos).sum()), cos.numel()


def _sequences(calibration) -> list[torch.Tensor]:
    # (n, seqlen) windows -> n rows; a list of 1-D id tensors (variable lengths) -> as given
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 2:
            raise ValueError(f"calibration ids have shape {tuple(calibration.shape)}; pass (nsamples, seqlen) ids "
                             "or a list of 1-D id tensors")
        return list(calibration)
    sequences = [torch.as_tensor(s, dtype=torch.long).reshape(-1) for s in calibration]
    if not sequences or any(s.numel() < 1 for s in sequences):
        raise ValueError("calibration holds no sequence (or an empty one); pass non-empty token id sequences")
    return sequences


@torch.no_grad()
def block_influence(model: nn.Module, tokenizer=None, calibration=None, *, batch_size: int = 1,
                    show_progress: bool = True, **calibration_kwargs) -> list[float]:
    """Block Influence of each decoder block of the dense model: list[float] of length L.

    ``calibration``: token ids (nsamples, seqlen), a list of 1-D id tensors of any lengths (each its own
    forward pass, no padding), or a source name drawn with ``calibration_kwargs``. One ordinary forward pass
    per chunk with a hook on every block (stopped after the last block: no LM head logits); each hook reduces
    its block's (batch, tokens, hidden) input and output to per-sample sums at once, so memory is one block's
    activations. Score = mean over samples of the sample's mean 1 - cos over its tokens.
    """
    from .allocation import _ids

    if not isinstance(calibration, (torch.Tensor, list, tuple)):
        calibration = _ids(tokenizer, calibration, calibration_kwargs)
    sequences = _sequences(calibration)
    layers = decoder_layers(model)
    sums = torch.zeros(len(layers), dtype=torch.float64)  # sum over samples of each sample's mean 1 - cos

    def hook(index, _module, args, kwargs, output):
        h_in = args[0] if args else kwargs["hidden_states"]
        h_out = output[0] if isinstance(output, (tuple, list)) else output
        cos = torch.nn.functional.cosine_similarity(h_in.float(), h_out.float(), dim=-1)  # (batch, tokens)
        sums[index] += float((1 - cos).double().mean(-1).sum())
        if index == len(layers) - 1:
            raise _StopAfterLastBlock

    handles = [layer.register_forward_hook(lambda m, a, k, o, i=i: hook(i, m, a, k, o), with_kwargs=True)
               for i, layer in enumerate(layers)]
    device = model.get_input_embeddings().weight.device
    same_length = len({s.numel() for s in sequences}) == 1
    chunks = (torch.stack(sequences).split(batch_size) if same_length else [s.unsqueeze(0) for s in sequences])
    was_training = model.training
    model.eval()
    try:
        for chunk in tqdm(chunks, desc="block influence", disable=not show_progress):
            try:
                model(input_ids=chunk.to(device), use_cache=False)
            except _StopAfterLastBlock:
                pass
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [float(s) / len(sequences) for s in sums]


def removal_count(n_blocks: int, sparsity: float | None = None, layers: int | None = None) -> int:
    """How many blocks ShortGPT removes: ``layers`` when given, else ``round(sparsity x n_blocks)``.

    Both given must agree (``round(sparsity x n_blocks) == layers``); ``layers`` must be in [1, n_blocks - 1].
    """
    if layers is None and sparsity is None:
        raise ValueError("ShortGPT needs shortgpt_layers (blocks to remove) or sparsity (share of blocks); give one")
    if layers is not None:
        if not 1 <= layers <= n_blocks - 1:
            raise ValueError(f"shortgpt_layers={layers} for a model of {n_blocks} decoder blocks; allowed: 1 to "
                             f"{n_blocks - 1} (at least one block must stay). Pick a count in that range.")
        if sparsity is not None and round(sparsity * n_blocks) != layers:
            raise ValueError(f"shortgpt_layers={layers} and sparsity={sparsity} disagree for {n_blocks} blocks: "
                             f"round({sparsity} x {n_blocks}) = {round(sparsity * n_blocks)}. Give only one of them.")
        return layers
    return round(sparsity * n_blocks)


def layers_to_remove(scores: Sequence[float], sparsity: float | None = None, *, count: int | None = None) -> list[int]:
    """Indices of the lowest-BI blocks (ties: the earlier block first), sorted: ``count`` of them, or
    ``round(sparsity x L)``."""
    count = removal_count(len(scores), sparsity, count) if count is not None else round(sparsity * len(scores))
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
