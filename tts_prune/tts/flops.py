"""Analytic FLOPs of a decoder LM per token, from its actual module shapes (not from a parameter count).

One token's forward pass costs ``2 * in * out`` FLOPs in every linear layer it crosses (a multiply and an add
per weight: q, k, v, o, gate, up, down of each decoder block, and the LM head), plus the attention scores and
the weighted sum over the context: ``QK^T`` and ``AV`` are ``2 * heads * head_dim * context`` each, per block.
Element-wise work (norms, activations, rotary, softmax) is left out, as ``torch.utils.flop_counter`` leaves it
out; it is well under 1% of the matmul work at 7B shapes.

What is counted is what dense kernels do:

- The blocks are counted from the model itself, so ShortGPT's removed blocks cost nothing (the saving is real).
- Unstructured zeros (Magnitude, Wanda, SparseGPT, N:M) are counted as dense work: a dense matmul multiplies by
  zero as fast as by anything else. ``nonzero_linear`` is the count a perfect sparse kernel would need; no
  kernel in the kit's backends achieves it today (``bench/sparse_kernels.py`` measures what torch offers).
- Attention is counted over the full causal context (no sliding window: Qwen2.5 and Qwen3 do not use one by
  default). Per generated token it grows linearly with the context, so a per-token figure names its context.

Kaplan et al., "Scaling Laws for Neural Language Models" (arXiv 2001.08361), section 2.1, counts a forward pass
the same way (2 FLOPs per weight per token plus a context-linear attention term); here the weights are read off
the modules rather than estimated from a parameter count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..models.layers import decoder_layers, is_linear, weight_matrix


@dataclass(frozen=True)
class TokenFlops:
    """FLOPs of one token through a model: ``linear`` (every linear layer, zeros included), ``nonzero_linear``
    (the same counting only non-zero weights: a perfect sparse kernel's work), and ``attention_per_context``
    (per block summed: FLOPs per token of context, so one token at context c costs ``linear + c * that``)."""

    linear: int
    nonzero_linear: int
    attention_per_context: int
    blocks: int
    heads: int
    head_dim: int
    kv_heads: int

    def per_token(self, context: float) -> float:
        """FLOPs of one token attending to ``context`` tokens (itself included)."""
        if context < 0:
            raise ValueError(f"context={context} must be >= 0 tokens")
        return self.linear + self.attention_per_context * float(context)

    def sequence(self, prompt_tokens: float, generated_tokens: float) -> float:
        """FLOPs of prefilling ``prompt_tokens`` then generating ``generated_tokens`` with a KV cache: every token
        crosses the linears once, and token i (1-based) attends to i positions, so attention sums to
        ``a * n(n+1)/2`` over the n = prompt + generated positions (the prompt's part computed in the prefill)."""
        if prompt_tokens < 0 or generated_tokens < 0:
            raise ValueError(f"prompt_tokens={prompt_tokens}, generated_tokens={generated_tokens} must be >= 0")
        n = float(prompt_tokens) + float(generated_tokens)
        return self.linear * n + self.attention_per_context * n * (n + 1) / 2

    def describe(self) -> dict:
        return asdict(self)


def attention_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(heads, head_dim, kv_heads)`` from the model's (text) config: ``head_dim`` when the config gives it
    (Qwen3: 128 with hidden 4096 and 32 heads), else hidden size / heads."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    if not heads:
        raise ValueError(f"{type(model).__name__}'s config names no attention heads (num_attention_heads / n_head); "
                         "analytic FLOPs need them")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return int(heads), int(head_dim), int(kv_heads)


def token_flops(model: nn.Module) -> TokenFlops:
    """The ``TokenFlops`` of ``model`` as it is now (after any pruning): linear shapes read from its modules,
    attention from its config and its actual number of decoder blocks."""
    dense, nonzero = 0, 0
    with torch.no_grad():
        for module in model.modules():
            if is_linear(module):
                weight = weight_matrix(module)  # (out_features, in_features)
                dense += 2 * weight.numel()
                nonzero += 2 * int(torch.count_nonzero(weight))
    blocks = len(decoder_layers(model))
    heads, head_dim, kv_heads = attention_shape(model)
    return TokenFlops(linear=dense, nonzero_linear=nonzero, attention_per_context=blocks * 4 * heads * head_dim,
                      blocks=blocks, heads=heads, head_dim=head_dim, kv_heads=kv_heads)


def kv_cache_bytes(flops: TokenFlops, tokens: int, batch: int, element_bytes: int) -> int:
    """Bytes of the KV cache for ``batch`` sequences of ``tokens`` positions: keys and values of every block,
    ``kv_heads x head_dim`` each (grouped-query attention stores fewer heads than it queries)."""
    return 2 * flops.blocks * flops.kv_heads * flops.head_dim * int(tokens) * int(batch) * int(element_bytes)
