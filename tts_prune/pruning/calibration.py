"""The one layer-by-layer calibration loop that every data-driven method shares (its data: ``windows.py``).

The loop follows Wanda (arXiv 2306.11695) and SparseGPT (arXiv 2301.00774): capture the inputs of the
first decoder block, then for each block in turn let hooks accumulate per-linear statistics, let the
caller prune the block, and feed the block's *pruned* outputs to the next block. Peak memory is the
model plus one block's activations for ``nsamples x seqlen`` tokens; nothing is sized by
``max_position_embeddings``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.layers import decoder_layers, prunable_linears
from .windows import calibration_batches, calibration_texts  # noqa: F401  (re-exported: the public data API)


class _StopForward(Exception):
    """Private signal that ends the capture forward pass once the block inputs are recorded."""


# ------------------------------------------------------------------------------------ statistics
@dataclass
class LinearStats:
    """Running input statistics of one linear layer over calibration tokens.

    ``sq_norm`` (in_features,) is sum over tokens of x_j^2, so ||X_j||_2 = sqrt(sq_norm) as Wanda needs;
    ``hessian`` (in_features, in_features) is 2 X X^T / tokens as SparseGPT needs (only if requested).
    """

    sq_norm: torch.Tensor
    hessian: torch.Tensor | None = None
    tokens: int = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()  # (tokens, in_features)
        self.sq_norm += (x * x).sum(0)
        if self.hessian is not None:
            # Running mean keeps the scale independent of the token count (SparseGPT's add_batch).
            n = x.shape[0]
            self.hessian *= self.tokens / (self.tokens + n)
            x = x * (2.0 / (self.tokens + n)) ** 0.5
            self.hessian += x.t() @ x
        self.tokens += x.shape[0]


def _attach_stats(linears: dict[str, nn.Module], hessian: bool) -> tuple[dict[str, LinearStats], list]:
    stats, handles = {}, []
    for name, module in linears.items():
        weight = module.weight
        in_features = weight.shape[1] if isinstance(module, nn.Linear) else weight.shape[0]
        stats[name] = LinearStats(
            torch.zeros(in_features, device=weight.device),
            torch.zeros(in_features, in_features, device=weight.device) if hessian else None,
        )
        handles.append(module.register_forward_hook(lambda _m, args, _out, s=stats[name]: s.add(args[0].detach())))
    return stats, handles


# ------------------------------------------------------------------------------------------ loop
def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _hidden(output):
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclass
class BlockStep:
    """One decoder block during the walk: its index, the module, and its inputs (one tensor per chunk).

    ``collect()`` runs the block with hooks and returns per-linear statistics; ``run()`` returns the
    block's outputs for the current weights. If the caller sets ``outputs`` (e.g. ShortGPT, which
    needs them anyway and does not change the block), the walk reuses them instead of recomputing.
    """

    index: int
    block: nn.Module
    inputs: list[torch.Tensor]
    kwargs: list[dict]
    outputs: list[torch.Tensor] | None = field(default=None)

    @torch.no_grad()
    def run(self) -> list[torch.Tensor]:
        device = _device_of(self.block)
        return [_hidden(self.block(x.to(device), **kw)) for x, kw in zip(self.inputs, self.kwargs)]

    def collect(self, hessian: bool = False, linears: dict[str, nn.Module] | None = None) -> dict[str, LinearStats]:
        stats, handles = _attach_stats(linears or prunable_linears(self.block), hessian)
        try:
            self.run()
        finally:
            for handle in handles:
                handle.remove()
        return stats


@torch.no_grad()
def capture_inputs(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 1) -> tuple[list, list[list[dict]]]:
    """Inputs of the first block per chunk and, per block, the keyword arguments each chunk gets.

    Hooks on every block record what the model passes it (attention mask, position ids, rotary
    ``position_embeddings``, cache flags), so models whose blocks get different masks (Gemma-2's
    sliding-window layers) are handled. A full pass through all blocks is made only once per distinct
    chunk size; other chunks stop at block 0 with a private exception.
    Returns ``(hidden, kwargs)`` with hidden[c] of shape (chunk, seqlen, hidden) and kwargs[c][layer].
    """
    layers = decoder_layers(model)
    record: dict = {}

    def pre_hook(index, _module, args, kwargs):
        if index == 0:
            record["hidden"] = args[0] if args else kwargs["hidden_states"]
        record.setdefault("kwargs", {})[index] = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        if record["stop_at"] == index:
            raise _StopForward

    handles = [layer.register_forward_pre_hook(lambda m, a, k, i=i: pre_hook(i, m, a, k), with_kwargs=True)
               for i, layer in enumerate(layers)]
    hidden, kwargs, by_size = [], [], {}
    embed_device = model.get_input_embeddings().weight.device
    try:
        for chunk in input_ids.split(batch_size):
            size = chunk.shape[0]
            record.clear()
            record["stop_at"] = 0 if size in by_size else len(layers) - 1
            try:
                model(input_ids=chunk.to(embed_device), use_cache=False)
            except _StopForward:
                pass
            hidden.append(record["hidden"])
            if size not in by_size:
                by_size[size] = [record["kwargs"][i] for i in range(len(layers))]
            kwargs.append(by_size[size])
    finally:
        for handle in handles:
            handle.remove()
    return hidden, kwargs


@torch.no_grad()
def walk_blocks(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 1,
                show_progress: bool = True, desc: str = "blocks") -> Iterator[BlockStep]:
    """Yield a :class:`BlockStep` per decoder block, in order; after the caller is done with a block
    (typically: collect stats, prune it), its outputs with the current weights become the next inputs.

    Each block runs on the device it lives on (``device_map="auto"`` models included).
    """
    layers = decoder_layers(model)
    was_training = model.training
    model.eval()
    hidden, kwargs = capture_inputs(model, input_ids, batch_size)
    try:
        for index in tqdm(range(len(layers)), desc=desc, disable=not show_progress):
            device = _device_of(layers[index])
            step = BlockStep(index, layers[index], [h.to(device) for h in hidden],
                             [_to(kw[index], device) for kw in kwargs])
            yield step
            hidden = step.outputs if step.outputs is not None else step.run()
    finally:
        model.train(was_training)
