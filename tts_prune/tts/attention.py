"""Grouped-query attention without copying the cache, on CPU, while the decode loop runs.

transformers' ``sdpa`` attention passes ``enable_gqa=True`` to ``torch.nn.functional.scaled_dot_product_attention``
only when there is no attention mask; with a mask (left-padded batches always have one) it first repeats
every key/value head ``num_key_value_groups`` times (``repeat_kv``), a copy of the whole cache per layer
and step. torch's CPU kernel takes grouped heads and a mask together, so on CPU this module's
``tts_sdpa_gqa`` hands them over as they are: the same numbers (GQA, Ainslie et al., arXiv 2305.13245,
only shares heads) without the copy. Anything else (no groups, no mask, CUDA, position biases, unequal
key/value head sizes) goes to transformers' own ``sdpa`` unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

NAME = "tts_sdpa_gqa"


def sdpa_gqa_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                     **kwargs):
    """transformers' ``sdpa`` attention, with grouped key/value heads passed to torch as they are on CPU."""
    groups = getattr(module, "num_key_value_groups", 1)
    plain = (groups == 1 or attention_mask is None or query.device.type != "cpu" or key.shape[-1] != value.shape[-1]
             or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None
             or kwargs.get("output_attentions", False))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, sdpa_gqa_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


@contextmanager
def grouped_attention(model):
    """Run ``model`` with ``tts_sdpa_gqa`` while inside the block when it uses ``sdpa``; restore it after."""
    before = getattr(model.config, "_attn_implementation", None)
    if before != "sdpa" or not hasattr(model, "set_attn_implementation"):
        yield model
        return
    model.set_attn_implementation(NAME)
    try:
        yield model
    finally:
        model.set_attn_implementation(before)
