"""Perplexity of a causal LM on a text or token ids, with a sliding window (Hugging Face's recipe).

Used as a quick sanity check of pruned models (the Wanda and SparseGPT papers report WikiText/C4
perplexity); each window scores only the tokens not already scored by the previous one.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm


@torch.no_grad()
def perplexity(model: nn.Module, tokenizer, text_or_ids: str | torch.Tensor, seqlen: int = 2048,
               stride: int | None = None, show_progress: bool = True, scored: torch.Tensor | None = None) -> float:
    """exp(mean negative log-likelihood per predicted token) over ``text_or_ids``.

    ``text_or_ids`` is a string (tokenized without special tokens) or token ids, (n,) or (1, n).
    Windows of ``seqlen`` tokens advance by ``stride`` (default ``seqlen``: disjoint windows); tokens
    already scored are masked out of the loss, so each token counts once, with up to ``seqlen - stride``
    tokens of context carried over. ``scored`` (bool, one per token) limits the mean to the tokens marked
    True, the others being context only: a chat model's answer tokens given its prompt, as its training
    loss counts them.
    """
    if isinstance(text_or_ids, str):
        ids = torch.tensor(tokenizer(text_or_ids, add_special_tokens=False)["input_ids"], dtype=torch.long)
    else:
        ids = torch.as_tensor(text_or_ids, dtype=torch.long).reshape(-1)
    stride = stride or seqlen
    if seqlen < 2 or not 0 < stride <= seqlen:
        raise ValueError(f"seqlen={seqlen}, stride={stride}: need seqlen >= 2 and 0 < stride <= seqlen")
    if ids.numel() < 2:
        raise ValueError(f"perplexity needs at least 2 tokens, got {ids.numel()}")
    if scored is not None:
        scored = torch.as_tensor(scored, dtype=torch.bool).reshape(-1)
        if scored.numel() != ids.numel() or not scored[1:].any():
            raise ValueError(f"scored has {scored.numel()} entries ({int(scored[1:].sum())} True after the first) for "
                             f"{ids.numel()} tokens: give one bool per token, some True after the first")
    device = model.get_input_embeddings().weight.device
    nll, count, scored_until = 0.0, 0, 0
    starts = range(0, max(ids.numel() - 1, 1), stride)
    for begin in tqdm(starts, desc="perplexity", disable=not show_progress):
        end = min(begin + seqlen, ids.numel())
        window = ids[begin:end].unsqueeze(0).to(device)
        logits = model(input_ids=window, use_cache=False).logits[0, :-1].float()  # (len-1, vocab)
        targets = window[0, 1:]
        # Target position t (absolute begin+1+t) counts only if not scored by an earlier window.
        keep = torch.arange(begin + 1, end, device=device) >= max(scored_until, begin + 1)
        if scored is not None:
            keep &= scored[begin + 1:end].to(device)
        losses = nn.functional.cross_entropy(logits, targets, reduction="none")[keep]
        nll += float(losses.sum())
        count += int(keep.sum())
        scored_until = end
        if end == ids.numel():
            break
    return math.exp(nll / count)
