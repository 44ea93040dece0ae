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

Memory: one trace at a time, and within it one slice of positions at a time. Each model runs its decoder body
once over the whole trace (no KV cache) and keeps only its final hidden states, (T, hidden); the LM head
(``get_output_embeddings()``) is then applied to ``slice_size`` positions at a time, log-softmaxed in float32
and reduced to the per-position KL at once. So the full-vocabulary tensors alive at any moment are a few
(slice_size, vocab) float32 slices (3 x 256 x 152,064 x 4 bytes ~ 0.5 GB at Qwen's vocabulary), whatever the
number and length of the traces; the batched version this replaces kept (batch, T, vocab) logits of both models
(16 x 8.4k x 152k ~ 41 GB in bf16). The two models may sit on different devices (dense on the GPU, pruned on
the CPU after a vLLM hand-off): each reads the trace on its own device and only the pruned slice's
log-probabilities travel, to the device where the KL is summed.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

COLUMNS = ["trace", "position", "length", "kl"]


class _Reader:
    """One model's side of the comparison: the decoder body's final hidden states of one trace, then the LM head
    on a slice of them. Generic over HF causal LMs (``get_decoder`` / ``get_output_embeddings``); the final
    logit soft-capping some configs declare (``final_logit_softcapping``, Gemma 2) is applied as the model's
    own head does, and every trace checks the streamed head against the model's own logits at its last
    position, so a model whose head does something else is refused instead of measured wrongly."""

    def __init__(self, model: nn.Module):
        self.model, self.body, self.head = model, model.get_decoder(), model.get_output_embeddings()
        if self.body is None or self.head is None:
            raise ValueError(f"trace_divergence needs a causal LM with a decoder body and an output embedding; "
                             f"{type(model).__name__} has get_decoder()={type(self.body).__name__}, "
                             f"get_output_embeddings()={type(self.head).__name__}")
        self.cap = getattr(model.config, "final_logit_softcapping", None)
        self.input_device = model.get_input_embeddings().weight.device
        self.head_device = self.head.weight.device

    @torch.no_grad()
    def hidden(self, ids: list[int]) -> torch.Tensor:
        """(T, hidden) final hidden states of one trace, in the model's dtype, on the head's device."""
        captured = {}

        def keep(_module, _args, output):
            captured["h"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

        hook = self.body.register_forward_hook(keep)
        try:  # the model's own forward (its masks, positions), computing logits for the last position only
            last = self.model(input_ids=torch.tensor([ids], device=self.input_device), use_cache=False,
                              logits_to_keep=1).logits[0, -1].float()
        finally:
            hook.remove()
        hidden = captured["h"][0].to(self.head_device)
        mine = self.log_probs(hidden[-1:], log_softmax=False)[0]
        tolerance = 8 * torch.finfo(hidden.dtype).eps * max(1.0, last.abs().max().item())
        if (mine - last.to(mine.device)).abs().max().item() > tolerance:
            raise ValueError(f"trace_divergence: {type(self.model).__name__}'s logits are not its output embedding "
                             "applied to its decoder's last hidden state (the model post-processes them), so the "
                             "streamed head would measure another distribution; this model is not supported")
        return hidden

    def log_probs(self, hidden: torch.Tensor, log_softmax: bool = True) -> torch.Tensor:
        """(S, vocab) float32 log-probabilities (or logits) of S positions: bf16 ones would add KL noise ~1e-2.
        Normalised in place (one (S, vocab) buffer besides logsumexp's temporary)."""
        logits = self.head(hidden).float()
        if self.cap:
            logits = torch.tanh_(logits.div_(self.cap)).mul_(self.cap)
        return logits.sub_(torch.logsumexp(logits, dim=-1, keepdim=True)) if log_softmax else logits


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """(S,) KL(p || q) per row of (S, vocab) log-probabilities; consumes both (in place), one more buffer."""
    log_q.neg_().add_(log_p)                                   # log p - log q
    return torch.einsum("sv,sv->s", log_p.exp_(), log_q)       # sum_v p (log p - log q), no (S, V) product


@contextmanager
def _placed(models: tuple[nn.Module, ...], device):
    """Each model on ``device`` for the duration (None: where it is), then back where it was."""
    homes = [next(m.parameters()).device for m in models]
    try:
        for model in models:
            if device is not None:
                model.to(device)
        yield
    finally:
        for model, home in zip(models, homes):
            if device is not None and torch.device(device) != home:
                model.to(home)


@torch.no_grad()
def token_kl(dense: nn.Module, pruned: nn.Module, sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
             batch_size: int = 8, pad_id: int = 0, slice_size: int = 256, device=None) -> pd.DataFrame:
    """KL(dense || pruned) at every continuation position; one row per (trace, position): ``trace``,
    ``position`` (0 = first continuation token), ``length`` (the trace's continuation length), ``kl`` (nats).

    ``sequences``: (prompt ids, continuation ids) pairs; the distribution compared at continuation position
    j is the one that predicts continuation token j (read at sequence index len(prompt) + j - 1).
    Traces are read one at a time (no padding) and the LM heads applied ``slice_size`` positions at a time, so
    peak memory does not grow with the number or the length of the traces (see the module docstring).
    ``batch_size`` and ``pad_id`` are accepted for callers of the former batched version and unused.
    ``device``: run both models there (each moved for the call, then back; e.g. ``"cuda"`` for a pruned model
    that a vLLM hand-off left on the CPU, once the engine is shut down); None: each where it is.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    if slice_size < 1:
        raise ValueError(f"slice_size={slice_size} must be >= 1 (positions per LM-head slice; 256 is a good start)")
    if any(len(p) < 1 for p, _ in sequences):
        raise ValueError("token_kl: every prompt needs at least one token (the first prediction reads it)")
    with _placed((dense, pruned), device):
        return _token_kl(_Reader(dense), _Reader(pruned), sequences, slice_size)


def _token_kl(p_side: _Reader, q_side: _Reader, sequences, slice_size: int) -> pd.DataFrame:
    # Sum the KL where an accelerator is, if either model has one: the pruned slice travels, never the dense.
    device = p_side.head_device if p_side.head_device.type != "cpu" else q_side.head_device
    columns = {name: [] for name in COLUMNS}
    for index, (prompt, cont) in enumerate(sequences):
        if not len(cont):
            continue
        full = list(prompt) + list(cont)
        h_p, h_q = p_side.hidden(full), q_side.hidden(full)                     # (T, hidden) each
        first = len(prompt) - 1  # index `first` predicts continuation token 0
        values = []
        for start in range(first, first + len(cont), slice_size):
            stop = min(start + slice_size, first + len(cont))
            log_p = p_side.log_probs(h_p[start:stop]).to(device)               # (S, V) float32
            log_q = q_side.log_probs(h_q[start:stop]).to(device)
            values.append(_kl_rows(log_p, log_q).clamp_min(0.0).cpu())
            del log_p, log_q
        del h_p, h_q
        columns["kl"].append(torch.cat(values).double().numpy())
        columns["trace"].append(np.full(len(cont), index, dtype=np.int64))
        columns["position"].append(np.arange(len(cont), dtype=np.int64))
        columns["length"].append(np.full(len(cont), len(cont), dtype=np.int64))
    return pd.DataFrame({name: np.concatenate(parts) if parts else np.array([], dtype=np.float64 if name == "kl"
                                                                           else np.int64)
                         for name, parts in columns.items()}, columns=COLUMNS)


def trace_divergence(dense: nn.Module, pruned: nn.Module, tokenizer, records: pd.DataFrame, batch_size: int = 8,
                     max_traces: int | None = None, slice_size: int = 256, device=None) -> pd.DataFrame:
    """``token_kl`` on evaluation records (``prompt`` and ``thinking`` columns, e.g. the dense run's at its
    largest budget); rows also carry the record's ``problem_id`` and ``seed``. Streams one trace and
    ``slice_size`` positions at a time on each model's device, or both on ``device`` (see ``token_kl``;
    ``batch_size`` is accepted and unused)."""
    missing = [c for c in ("prompt", "thinking") if c not in records.columns]
    if missing:
        raise ValueError(f"trace_divergence needs evaluation records with prompt and thinking; missing {missing}")
    records = records.reset_index(drop=True)
    if max_traces is not None:
        records = records.head(max_traces)
    encode = lambda text: tokenizer(str(text or ""), add_special_tokens=False)["input_ids"]  # noqa: E731
    sequences = [(encode(p), encode(t)) for p, t in zip(records["prompt"], records["thinking"])]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    table = token_kl(dense, pruned, sequences, batch_size=batch_size, pad_id=pad, slice_size=slice_size,
                     device=device)
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
