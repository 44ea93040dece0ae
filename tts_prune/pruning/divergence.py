"""Dense-vs-pruned divergence on the dense model's own reasoning traces: one forward pass per model.

For every stored dense trace (prompt + thinking), both models read the same tokens (teacher forcing, no
generation) and at each thinking position t we compare their next-token distributions:

    KL_t = KL(P_dense(. | x_<t) || P_pruned(. | x_<t)) = sum_v P_dense(v) (log P_dense(v) - log P_pruned(v))

the divergence *of the pruned model from the dense one*, measured where the dense model actually goes
(its own traces), in nats. Averaged over tokens it is the extra per-token cross-entropy the pruned model
pays on dense reasoning; by position it shows whether damage accumulates late in long traces. It is the
token-level distillation objective of Hinton et al. (arXiv 1503.02531) used as a measurement, and a cheap
candidate predictor of test-time-scaling damage (05-report plots it against the accuracy change).

The thinking is re-tokenized from its text after the prompt's ids (prompt and thinking tokenized apart, so
no token merges across the boundary); for byte-level BPE this can differ from the ids the model sampled
in rare cases, which changes which tokens are compared but not the definition.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from torch import nn


@torch.no_grad()
def _log_probs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # (batch, seq, vocab) log-softmax in float32 (bf16 logits would make KL noise of order 1e-2)
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    return torch.log_softmax(logits.float(), dim=-1).cpu()


def token_kl(dense: nn.Module, pruned: nn.Module, sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
             batch_size: int = 8, pad_id: int = 0) -> pd.DataFrame:
    """KL(dense || pruned) at every continuation position; one row per (trace, position): ``trace``,
    ``position`` (0 = first continuation token), ``length`` (the trace's continuation length), ``kl`` (nats).

    ``sequences``: (prompt ids, continuation ids) pairs; the distribution compared at continuation position
    j is the one that predicts continuation token j (read at sequence index len(prompt) + j - 1).
    Right padding with an attention mask; each model runs one forward pass per batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    rows = []
    for start in range(0, len(sequences), batch_size):
        part = sequences[start:start + batch_size]
        full = [list(p) + list(c) for p, c in part]
        if any(len(p) < 1 for p, _ in part):
            raise ValueError("token_kl: every prompt needs at least one token (the first prediction reads it)")
        width = max(len(f) for f in full)
        ids = torch.full((len(full), width), pad_id, dtype=torch.long)              # (B, T)
        mask = torch.zeros((len(full), width), dtype=torch.long)
        for i, f in enumerate(full):
            ids[i, :len(f)] = torch.tensor(f, dtype=torch.long)
            mask[i, :len(f)] = 1
        log_p = _log_probs(dense, ids, mask)                                        # (B, T, V)
        log_q = _log_probs(pruned, ids, mask)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)                                # (B, T)
        for i, (prompt, cont) in enumerate(part):
            first = len(prompt) - 1  # logits at index first predict continuation token 0
            values = kl[i, first:first + len(cont)].clamp_min(0.0).tolist()
            rows += [{"trace": start + i, "position": j, "length": len(cont), "kl": v} for j, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["trace", "position", "length", "kl"])


def trace_divergence(dense: nn.Module, pruned: nn.Module, tokenizer, records: pd.DataFrame, batch_size: int = 8,
                     max_traces: int | None = None) -> pd.DataFrame:
    """``token_kl`` on evaluation records (``prompt`` and ``thinking`` columns, e.g. the dense run's at its
    largest budget); rows also carry the record's ``problem_id`` and ``seed``."""
    missing = [c for c in ("prompt", "thinking") if c not in records.columns]
    if missing:
        raise ValueError(f"trace_divergence needs evaluation records with prompt and thinking; missing {missing}")
    records = records.reset_index(drop=True)
    if max_traces is not None:
        records = records.head(max_traces)
    encode = lambda text: tokenizer(str(text or ""), add_special_tokens=False)["input_ids"]  # noqa: E731
    sequences = [(encode(p), encode(t)) for p, t in zip(records["prompt"], records["thinking"])]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    table = token_kl(dense, pruned, sequences, batch_size=batch_size, pad_id=pad)
    for column in ("problem_id", "seed"):
        if column in records.columns:
            table[column] = records[column].to_numpy()[table["trace"].to_numpy()] if len(table) else []
    return table


def divergence_summary(table: pd.DataFrame, bins: int = 4) -> dict:
    """Mean KL over all tokens, the mean of per-trace means, and the mean in ``bins`` equal parts of each
    trace by relative position (``by_position``: list of (bin, mean KL), first quarter first for bins=4)."""
    if table.empty:
        raise ValueError("divergence_summary: no tokens compared; the traces have no thinking tokens")
    relative = (table["position"] / table["length"].clip(lower=1) * bins).astype(int).clip(upper=bins - 1)
    by_position = table.groupby(relative)["kl"].mean()
    return {"kl_mean": float(table["kl"].mean()), "kl_trace_mean": float(table.groupby("trace")["kl"].mean().mean()),
            "tokens": int(len(table)), "traces": int(table["trace"].nunique()),
            "by_position": [(int(b), float(v)) for b, v in by_position.items()]}
