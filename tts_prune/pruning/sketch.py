"""LayerIF's block-wise approximation (``layerif-block``): influence scores from sketched per-block gradients.

DataInf (arXiv 2310.00902) on random projections of each block's gradients, in the spirit of LayerIF
(arXiv 2505.23811); the paper's own per-module influence is :mod:`.influence`. Used by
:func:`.allocation.layerif_block`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.layers import decoder_layers, prunable_linears, weight_matrix


def layerif_scores(model: nn.Module, input_ids: torch.Tensor, proj_dim: int = 32, seed: int = 0,
                   show_progress: bool = True, validation_ids: torch.Tensor | None = None) -> list[float]:
    """Per-block influence score in the spirit of LayerIF (arXiv 2505.23811): summed positive influence of
    "train" sequences on a validation loss, computed with DataInf on random projections of per-block
    gradients. This is an approximation of the paper's method, not its code (none for the scores is public).

    What is computed: train samples are ``input_ids`` and the validation set is ``validation_ids``; when
    that is None, the first half of ``input_ids`` is train and the second half validation (the paper uses
    a task's own training and validation splits: pass e.g. training-split reasoning problems as
    ``validation_ids``). For block l, each sample's LM-loss gradient w.r.t. the block's linear weights
    G (out, in) is sketched to P_out^T G P_in (proj_dim^2 values per linear, fixed Gaussian P,
    LoGra-style) instead of the full gradient, to keep memory O(proj_dim^2). The influence of train sample
    k is I_k = -v^T (H_l + lambda I)^-1 g_k, with v the mean validation gradient and the inverse in
    DataInf's closed form (arXiv 2310.00902): (1/n sum_i g_i g_i^T + lambda I)^-1 ~
    1/(n lambda) sum_i (I - g_i g_i^T / (lambda + |g_i|^2)), lambda = 0.1 x mean squared gradient entry.
    Positive I_k means up-weighting k raises validation loss; the score is sum_k max(I_k, 0), so a higher
    score marks a lower-quality block, and :func:`layerif_block` prunes it more. (The paper's ``layerif`` uses
    exact per-module gradients instead: :mod:`.influence`.)
    """
    from tqdm.auto import tqdm

    if validation_ids is None:
        if input_ids.shape[0] < 2:
            raise ValueError(f"LayerIF needs >= 2 calibration sequences (train and validation), got "
                             f"{input_ids.shape[0]}; raise layerif_samples or pass validation_ids")
        ntrain = input_ids.shape[0] // 2
        samples = input_ids
    else:
        ntrain = input_ids.shape[0]
        samples = list(input_ids) + list(validation_ids)
    layers = decoder_layers(model)
    linears = [prunable_linears(b) for b in layers]
    gen = torch.Generator().manual_seed(seed)
    proj = [{n: (torch.randn(weight_matrix(m).shape[0], proj_dim, generator=gen) / proj_dim ** 0.5,
                 torch.randn(weight_matrix(m).shape[1], proj_dim, generator=gen) / proj_dim ** 0.5)
             for n, m in lin.items()} for lin in linears]
    params = {p: p.requires_grad for p in model.parameters()}
    wanted = {id(m.weight) for lin in linears for m in lin.values()}
    for p in params:
        p.requires_grad_(id(p) in wanted)
    device = model.get_input_embeddings().weight.device
    sketches: list[list[torch.Tensor]] = [[] for _ in layers]  # [layer][sample] -> (D,)
    try:
        for ids in tqdm(samples, desc="LayerIF gradients", disable=not show_progress):
            model.zero_grad(set_to_none=True)
            ids = ids.unsqueeze(0).to(device)
            with torch.enable_grad():
                model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
            for l, lin in enumerate(linears):
                parts = []
                for name, module in lin.items():
                    g = module.weight.grad.float()
                    g = g if isinstance(module, nn.Linear) else g.t()  # (out, in)
                    p_out, p_in = proj[l][name]
                    parts.append((p_out.to(g.device).t() @ g @ p_in.to(g.device)).reshape(-1).cpu())
                sketches[l].append(torch.cat(parts).double())
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in params.items():
            p.requires_grad_(flag)
    return [float(datainf_influence(torch.stack(g[:ntrain]), torch.stack(g[ntrain:]).mean(0)).clamp_min(0).sum())
            for g in sketches]


def datainf_influence(train: torch.Tensor, val: torch.Tensor, damping: float = 0.1) -> torch.Tensor:
    """DataInf influence (arXiv 2310.00902) of each train gradient (n, D) on the validation gradient (D,).

    I_k = -v^T (1/n sum_i g_i g_i^T + lambda I)^-1 g_k with the inverse replaced by DataInf's
    1/(n lambda) sum_i (I - g_i g_i^T / (lambda + |g_i|^2)) and lambda = damping x mean(|g_i|^2) / D.
    Only dot products are needed: O(n^2 D), no D x D matrix. Returns (n,).
    """
    g, v = train.double(), val.double()
    sq = (g * g).sum(1)                                   # (n,)
    lam = damping * float(sq.mean()) / g.shape[1]
    vg, gram = g @ v, g @ g.t()                           # (n,), (n, n)
    correction = ((vg / (lam + sq)).unsqueeze(1) * gram).mean(0)  # (1/n) sum_i (v.g_i)(g_i.g_k)/(lam+|g_i|^2)
    return -(vg - correction) / lam
