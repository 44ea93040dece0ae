"""Per-sample, per-module influence of training sequences on a validation loss (LayerIF's scores, computed).

LayerIF ("Estimating Layer Quality for Large Language Models using Influence Functions", Askari et al.,
arXiv 2505.23811) scores each layer by the influence of training samples on a validation loss computed with
that layer's gradients alone, with DataInf's closed-form inverse Hessian ("DataInf: Efficiently Estimating
Data Influence in LoRA-tuned LLMs and Diffusion Models", Kwon et al., arXiv 2310.00902). No public code of
LayerIF's scores was found (searched 2026-12-01: its pruning repository HadiAskari/LayerIF_Pruning_New and the
authors' OCM-7898/TTS-Pruning only read precomputed score files), so this module implements the papers'
definitions, following DataInf's public ``src/influence.py`` (ykwon0407/DataInf) for the closed form:

For a weight matrix m with per-sample LM-loss gradients g_k (train sample k of n) and the mean validation
gradient v, DataInf (its ``compute_hvp_proposed`` and ``IFEngineGeneration.compute_IF``, per weight matrix)
gives

    lambda_m = damping x mean_k(|g_k|^2 / numel_m)            (damping 0.1: DataInf's lambda_const_param=10)
    h_m      = 1/(n lambda_m) sum_i (v - c_i g_i),  c_i = (v . g_i) / (lambda_m + |g_i|^2)
    I_k,m    = h_m . g_k = ((v . g_k) - (u_m . g_k) / n) / lambda_m,  u_m = sum_i c_i g_i

and a module's influence is the sum over its matrices (DataInf sums over weight names): the attention
linears of block l give ``layer_{l}_attention`` and the MLP linears ``layer_{l}_mlp``, the record format of
the pickles the authors of arXiv 2604.25098 ship.

Sign: DataInf's engine for generative LLMs (``IFEngineGeneration``) returns ``h . g_k`` without the minus of
its classifier engine, so I > 0 means up-weighting sample k *lowers* the validation loss through that module
(a helpful sample). The kit uses that sign. The authors' pickles do not say which sign they hold (their code
only sums the positive values and prunes modules with a larger sum *less*, which fits this sign: modules the
training data helps are kept); with the classifier sign, positive values are rare on in-distribution data and
the sums are mostly zero (a degenerate allocation). The gradients are exact, per sample, of the real weights
(no LoRA, no random projection); LayerIF's experiments computed them on LoRA-fine-tuned models.

Memory: nothing of size (n x parameters) is ever held. The loop streams samples four times (validation,
then three passes over the training samples: scalars, the u_m accumulation, the u_m . g_k products), so
beyond the model it holds one sample's ``.grad`` (model dtype) plus v and u in float32, for the blocks of
the current pass. At 7B (Qwen2.5-7B: 6.5 B prunable weights, bf16) that is 13 GB of gradients + 52 GB of
v and u for all 28 blocks at once; ``layers_per_pass=1`` lowers it to ~2.3 GB (one block) at 28 times the
backward passes (each stops at the block, autograd skips the blocks below it).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..models.layers import decoder_layers, prunable_linears

MODULE_KINDS = ("attention", "mlp")
_KIND_MARKERS = {"attention": ("attn", "attention"), "mlp": ("mlp", "ffn", "feed_forward")}


def module_kind(linear_name: str) -> str:
    """``"attention"`` or ``"mlp"`` for a block's linear (``self_attn.q_proj`` -> attention, ``mlp.down_proj``
    -> mlp, GPT-2's ``attn.c_attn`` / ``mlp.c_fc`` alike): the first dotted part naming either, as the
    authors' rule (``"self_attn" in name or "attention" in name`` / ``"mlp" in name``) without per-family code."""
    for part in linear_name.lower().split("."):
        for kind, markers in _KIND_MARKERS.items():
            if any(marker in part for marker in markers):
                return kind
    raise ValueError(f"linear {linear_name!r} is neither attention nor MLP (no part of its name contains "
                     f"{sorted(m for ms in _KIND_MARKERS.values() for m in ms)}); LayerIF allocates per module "
                     "type: use allocation='layerif-block' (one sparsity per block) for this model")


def score_key(layer: int, kind: str) -> str:
    """The pickle key of one module's score: ``layer_3_attention``, ``layer_3_mlp``."""
    return f"layer_{layer}_{kind}"


def split_train_validation(ids: torch.Tensor, validation_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation sequences: ``validation_ids`` when given, else the two halves of ``ids``."""
    if validation_ids is not None:
        return ids, validation_ids
    if ids.shape[0] < 2:
        raise ValueError(f"LayerIF needs >= 2 calibration sequences (train and validation), got {ids.shape[0]}; "
                         "raise layerif_samples or pass validation windows (layerif_validation)")
    half = ids.shape[0] // 2
    return ids[:half], ids[half:]


def _gradients(model: nn.Module, samples, weights: dict[str, nn.Parameter], desc: str,
               show_progress: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Yield, per sample (1, seqlen), the LM-loss gradient of each weight (only ``weights`` require grad)."""
    from tqdm.auto import tqdm

    device = model.get_input_embeddings().weight.device
    for ids in tqdm(samples, desc=desc, disable=not show_progress):
        model.zero_grad(set_to_none=True)
        ids = ids.unsqueeze(0).to(device)
        with torch.enable_grad():
            model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        yield {key: w.grad for key, w in weights.items()}


def _wide(g: torch.Tensor) -> torch.Tensor:
    """Gradients accumulate in float32 at least (bf16 / fp16 models), float64 when the model is float64."""
    return g.to(torch.promote_types(g.dtype, torch.float32))


def _influence_of(model, train, validation, weights, damping, show_progress) -> torch.Tensor:
    """(n_train, len(weights)) DataInf influence per train sample and weight matrix (see module docstring)."""
    keys, n = list(weights), train.shape[0]
    v = {k: torch.zeros_like(_wide(w.detach())) for k, w in weights.items()}
    for grads in _gradients(model, validation, weights, "LayerIF validation gradients", show_progress):
        for k in keys:
            v[k] += _wide(grads[k]) / validation.shape[0]
    sq = torch.zeros(n, len(keys), dtype=torch.float64)   # |g_k|^2
    vg = torch.zeros(n, len(keys), dtype=torch.float64)   # v . g_k
    for i, grads in enumerate(_gradients(model, train, weights, "LayerIF train gradients 1/3", show_progress)):
        for j, k in enumerate(keys):
            g = _wide(grads[k])
            sq[i, j], vg[i, j] = float((g * g).sum()), float((v[k] * g).sum())
    numel = torch.tensor([float(weights[k].numel()) for k in keys], dtype=torch.float64)
    lam = damping * sq.mean(0) / numel                     # (matrices,) DataInf's layer-wise lambda
    c = vg / (lam + sq)                                    # (n, matrices)
    u = {k: torch.zeros_like(v[k]) for k in keys}
    for i, grads in enumerate(_gradients(model, train, weights, "LayerIF train gradients 2/3", show_progress)):
        for j, k in enumerate(keys):
            u[k] += float(c[i, j]) * _wide(grads[k])
    del v
    ug = torch.zeros(n, len(keys), dtype=torch.float64)   # u . g_k
    for i, grads in enumerate(_gradients(model, train, weights, "LayerIF train gradients 3/3", show_progress)):
        for j, k in enumerate(keys):
            ug[i, j] = float((u[k] * _wide(grads[k])).sum())
    influence = (vg - ug / n) / lam
    # A matrix whose gradients are all zero carries no signal (lambda = 0): it contributes nothing.
    return torch.where(lam > 0, influence, torch.zeros_like(influence))


def module_influence(model: nn.Module, train_ids: torch.Tensor, validation_ids: torch.Tensor, *,
                     damping: float = 0.1, layers_per_pass: int | None = None,
                     show_progress: bool = True) -> list[dict]:
    """Per-sample, per-module DataInf influence of ``train_ids`` (n, seqlen) on the mean LM loss of
    ``validation_ids`` (m, seqlen), in the authors' pickle format: one ``{"sample_id": k, "scores":
    {"layer_{l}_attention": float, "layer_{l}_mlp": float, ...}}`` per train sequence.

    ``layers_per_pass`` blocks get gradients at a time (None: all at once); see the module docstring for
    what it holds in memory.
    """
    if train_ids.shape[0] < 1 or validation_ids.shape[0] < 1:
        raise ValueError(f"LayerIF needs >= 1 train and >= 1 validation sequence, got {train_ids.shape[0]} and "
                         f"{validation_ids.shape[0]}; raise layerif_samples")
    blocks = decoder_layers(model)
    step = layers_per_pass or len(blocks)
    kinds: dict[str, tuple[int, str]] = {}
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    columns: dict[str, torch.Tensor] = {}
    try:
        for start in range(0, len(blocks), step):
            weights: dict[str, nn.Parameter] = {}
            for index in range(start, min(start + step, len(blocks))):
                for name, module in prunable_linears(blocks[index]).items():
                    key = f"{index}.{name}"
                    weights[key], kinds[key] = module.weight, (index, module_kind(name))
                    module.weight.requires_grad_(True)
            values = _influence_of(model, train_ids, validation_ids, weights, damping, show_progress)
            columns.update({key: values[:, j] for j, key in enumerate(weights)})
            for w in weights.values():
                w.requires_grad_(False)
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in flags.items():
            p.requires_grad_(flag)
    records = []
    for k in range(train_ids.shape[0]):
        scores = {score_key(layer, kind): 0.0 for layer in range(len(blocks)) for kind in MODULE_KINDS}
        for key, column in columns.items():
            scores[score_key(*kinds[key])] += float(column[k])
        records.append({"sample_id": k, "scores": scores})
    return records
