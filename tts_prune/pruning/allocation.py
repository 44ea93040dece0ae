"""Layer-wise sparsity allocation: how much of each decoder block to prune for a global target ``s``.

Every strategy returns one ratio per block; ``layerif`` (the paper's, :mod:`.layerif`) returns a
:class:`~.layerif.ModuleAllocation`, a list of per-block ratios that also carries one ratio per linear
(attention and MLP differ), which the driver follows. AlphaPruning and LayerIF rescale so that the mean
weighted by prunable parameters (for ``layerif``: per module type) equals ``s``; OWL, as its reference
code, centres the unweighted mean on ``s`` and then sets non-positive ratios to 0.01 without rebalancing (``owl_clip="rebalance"`` restores an
exact weighted mean). The driver reports target and achieved sparsity either way. Registry: :data:`ALLOCATORS`.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .calibration import walk_blocks
from ..models.layers import decoder_layers, prunable_linears, weight_matrix
from .kernels import ALPHA_ESTIMATORS, outlier_ratio, wanda_score
from .declare import Allocation, Param, in_unit_interval, positive_int
from .layerif import DEGENERATE, layerif, layerif_windows
from .sketch import datainf_influence, layerif_scores  # noqa: F401  (public here since before the split)

MAX_RATIO = 0.99  # a block pruned to 100% would zero every linear in it; keep one weight in a hundred


def layer_weights(model: nn.Module) -> list[int]:
    """Prunable parameters per decoder block (the weights of the weighted-mean constraint)."""
    return [sum(weight_matrix(m).numel() for m in prunable_linears(b).values()) for b in decoder_layers(model)]


def rebalance(ratios: Sequence[float], weights: Sequence[float], target: float, scale: bool = False) -> list[float]:
    """Shift (after an optional multiplicative rescale) ``ratios`` so that the ``weights``-weighted mean
    of ``clip(ratio, 0, MAX_RATIO)`` equals ``target``; the shift is found by bisection."""
    r = torch.tensor(ratios, dtype=torch.float64)
    w = torch.tensor(weights, dtype=torch.float64)
    if scale and float((w * r).sum()) > 0:
        r = r * target * w.sum() / (w * r).sum()  # AlphaPruning's rescaling

    def mean(shift: float) -> float:
        return float((w * (r + shift).clamp(0, MAX_RATIO)).sum() / w.sum())

    low, high = -1.0 - float(r.max()), 1.0 - float(r.min())
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if mean(mid) < target else (low, mid)
    return [float(x) for x in (r + (low + high) / 2).clamp(0, MAX_RATIO)]


def linear_map(scores: Sequence[float], low: float, high: float) -> list[float]:
    """Map scores linearly onto [low, high] (min -> low, max -> high); constant scores map to the middle."""
    s = torch.tensor(scores, dtype=torch.float64)
    span = float(s.max() - s.min())
    if span == 0:
        return [(low + high) / 2] * len(s)
    return [float(x) for x in (s - s.min()) / span * (high - low) + low]


# --------------------------------------------------------------------------------------- signals
@torch.no_grad()
def activation_profile(model: nn.Module, tokenizer=None, calibration: torch.Tensor | None = None, *,
                       owl_m: float = 5.0, batch_size: int = 1, show_progress: bool = True,
                       **calibration_kwargs) -> pd.DataFrame:
    """One row per (layer, linear) of the *dense* model: input-feature-norm statistics of ||X_j||_2 and
    the OWL outlier ratio of its Wanda scores, plus the block-level ratio OWL uses (``layer_outlier_ratio``:
    share of all the block's scores above ``owl_m`` x the block's mean score, arXiv 2310.05175)."""
    ids = _ids(tokenizer, calibration, calibration_kwargs)
    rows = []
    for step in walk_blocks(model, ids, batch_size=batch_size, show_progress=show_progress, desc="profile"):
        linears = prunable_linears(step.block)
        stats = step.collect(linears=linears)
        scores = {name: wanda_score(weight_matrix(linears[name]), st.sq_norm) for name, st in stats.items()}
        total = sum(float(s.sum()) for s in scores.values())
        count = sum(s.numel() for s in scores.values())
        threshold = owl_m * total / count
        layer_ratio = sum(float((s > threshold).sum()) for s in scores.values()) / count
        for name, st in stats.items():
            norm = st.sq_norm.sqrt()
            rows.append({"layer": step.index, "linear": name, "in_features": norm.numel(),
                         "norm_mean": float(norm.mean()), "norm_median": float(norm.median()),
                         "norm_max": float(norm.max()), "norm_max_over_median": float(norm.max() / norm.median().clamp_min(1e-12)),
                         "outlier_ratio": outlier_ratio(scores[name], owl_m), "layer_outlier_ratio": layer_ratio})
    return pd.DataFrame(rows)


def _ids(tokenizer, calibration, kwargs) -> torch.Tensor:
    if isinstance(calibration, torch.Tensor):
        return calibration
    from .windows import calibration_batches

    return calibration_batches(tokenizer, calibration or kwargs.pop("source", "gsm8k"), **kwargs)


def alpha_per_layer(model: nn.Module, estimator: str = "peak") -> list[float]:
    """Mean heavy-tail exponent of the ESD over each block's linears (AlphaPruning's ``block_wise``
    mapping); ``estimator`` is ``"peak"`` (the reference's ``alpha_peak``, KS-distance xmin search) or
    ``"median"`` (Hill estimator with xmin at the median eigenvalue, ``alpha_mid``). Needs no data."""
    fit = ALPHA_ESTIMATORS[estimator]
    return [float(torch.tensor([fit(weight_matrix(m)) for m in prunable_linears(b).values()]).nanmean())
            for b in decoder_layers(model)]


# -------------------------------------------------------------------------------------- strategies
def uniform(model, ids, config, show_progress=True, tokenizer=None) -> list[float]:
    """Every block gets the target sparsity."""
    return [config.sparsity] * len(decoder_layers(model))


def owl_ratios(outlier_ratios: Sequence[float], sparsity: float, lam: float, clip: str = "reference",
               weights: Sequence[float] | None = None) -> list[float]:
    """OWL's per-block sparsity from per-block outlier ratios (the reference's formula, luuyin/OWL).

    mapped = (r - min r) / (max r - min r) x 2 lambda; keep ratio = mapped - mean(mapped) + (1 - s);
    sparsity = 1 - keep (mean over blocks, unweighted). ``clip="reference"``: non-positive sparsities
    become 0.01 and nothing is rebalanced, so the global sparsity can exceed s (OWL's code and the authors'
    Wanda + OWL); ``"zero"``: they become 0 (the authors' magnitude + OWL); ``"rebalance"``: clip to
    [0, 0.99] and shift until the ``weights``-weighted mean is s. Equal outlier ratios (the reference
    divides by zero there) give every block s.
    """
    r = torch.tensor(outlier_ratios, dtype=torch.float64)
    span = float(r.max() - r.min())
    mapped = (r - r.min()) / span * 2 * lam if span > 0 else torch.zeros_like(r)
    ratios = 1 - (mapped - mapped.mean() + (1 - sparsity))
    return OWL_CLIPS[clip]([float(x) for x in ratios], weights, sparsity)


OWL_CLIPS: dict[str, Callable] = {
    "reference": lambda ratios, weights, target: [0.01 if x <= 0 else x for x in ratios],
    # the authors' magnitude + OWL (TTS-Pruning wanda/lib/prune.py prune_mag_outlier): no clipping, and a
    # block whose sparsity is <= 0 has int(numel x s) <= 0 weights pruned, i.e. none
    "zero": lambda ratios, weights, target: [max(x, 0.0) for x in ratios],
    "rebalance": lambda ratios, weights, target: rebalance(ratios, weights or [1.0] * len(ratios), target),
}


def owl(model, ids, config, show_progress=True, tokenizer=None) -> list[float]:
    """OWL: "Outlier Weighed Layerwise Sparsity" (Yin et al., arXiv 2310.05175). Blocks with more
    outliers (Wanda scores above M x mean) get lower sparsity, linearly within s +- lambda; see
    :func:`owl_ratios` for the reference formula and its clipping.

    As the authors of arXiv 2604.25098 run it (TTS-Pruning ``wanda/lib/prune.py``, ``prune_wanda_outlier`` and
    ``prune_mag_outlier``, ``--Hyper_m 7 --Lamda 0.08``): a block's outlier ratio is the share of the Wanda
    scores |W_ij| x ||X_j|| of *all* its linears, pooled, above M x their pooled mean, with X the calibration
    activations of the *dense* model (one pass before any pruning); the same ratios serve every method, so
    magnitude + OWL also computes them from Wanda scores and then prunes each matrix by |W|. Their ratio is a
    percentage (x 100) and their ||X_j||^2 is averaged over samples: scale factors the min-max mapping cancels."""
    profile = activation_profile(model, calibration=ids, owl_m=config.owl_m, batch_size=config.batch_size,
                                 show_progress=show_progress)
    ratios = profile.groupby("layer")["layer_outlier_ratio"].first().tolist()
    return owl_ratios(ratios, config.sparsity, config.owl_lambda, config.owl_clip, layer_weights(model))


def _eps_map(scores: Sequence[float], model, config, eps: float) -> list[float]:
    # Both AlphaPruning and the LayerIF scripts: linear in [s(1-eps), s(1+eps)], then rescaled to mean s.
    mapped = linear_map(scores, config.sparsity * (1 - eps), config.sparsity * (1 + eps))
    return rebalance(mapped, layer_weights(model), config.sparsity, scale=True)


def alphapruning(model, ids, config, show_progress=True, tokenizer=None) -> list[float]:
    """AlphaPruning: "Using Heavy-Tailed Self Regularization Theory for Improved Layer-wise Pruning of
    LLMs" (Lu et al., arXiv 2410.10912). Higher ESD exponent alpha (less well trained) -> more pruning,
    linear in [s(1-eps), s(1+eps)] then rescaled to the target mean; needs no data. ``alpha_estimator``
    "peak" (default, the reference's ``alpha_peak``) or "median"; ``alpha_eps`` defaults to the reference
    scripts' value for the method (0.3 magnitude, 0.2 Wanda / SparseGPT)."""
    return _eps_map(alpha_per_layer(model, config.alpha_estimator), model, config, config.alpha_eps)


def layerif_block(model, ids, config, show_progress=True, tokenizer=None) -> list[float]:
    """``layerif-block``: the kit's earlier block-wise approximation of LayerIF (arXiv 2505.23811), one
    sparsity per block from the sketched scores of :func:`layerif_scores`. Higher score (lower quality) ->
    more pruning, linear in [s(1-eps), s(1+eps)], rescaled to the target mean; eps as the LayerIF pruning
    scripts: 0.1 for Wanda / SparseGPT, 0.3 for magnitude. Train / validation windows as ``layerif`` (the
    paper's allocation, :mod:`.layerif`): see :func:`.layerif.layerif_windows`."""
    train, validation = layerif_windows(ids, config, tokenizer)
    scores = layerif_scores(model, train, seed=config.seed, show_progress=show_progress, validation_ids=validation)
    if max(scores) == min(scores):  # e.g. no positive influence anywhere: linear_map would give every block s
        why = (f"layerif-block scores are degenerate ({scores[:4]}...: all {scores[0]}), a uniform allocation in "
               "disguise (issue 20: on few in-distribution windows the summed positive harmful influence is often 0)")
        if config.layerif_on_degenerate == "error":
            raise ValueError(f"{why}. Use more or other windows (layerif_samples, layerif_validation), allocation="
                             "'layerif', or set layerif_on_degenerate='uniform' to accept the fallback")
        warnings.warn(f"{why}; layerif_on_degenerate='uniform': every block gets {config.sparsity}", stacklevel=2)
    return _eps_map(scores, model, config, config.layerif_eps)


def manual(model, ids, config, show_progress=True, tokenizer=None) -> list[float]:
    """Explicit per-block sparsities from the user (``PruneConfig.layer_sparsities``)."""
    ratios, weights = list(config.layer_sparsities or []), layer_weights(model)
    if len(ratios) != len(weights):
        raise ValueError(f"layer_sparsities has {len(ratios)} entries but the model has {len(weights)} decoder "
                         "blocks; give one ratio per block")
    mean = sum(r * w for r, w in zip(ratios, weights)) / sum(weights)
    if abs(mean - config.sparsity) > 1e-3:
        raise ValueError(f"layer_sparsities have parameter-weighted mean {mean:.4f} but sparsity={config.sparsity}; "
                         f"set sparsity={mean:.4f} or adjust the list")
    return ratios


def _check_owl(config, fail) -> None:
    if not (0 <= config.owl_lambda and config.sparsity + 2 * config.owl_lambda < 1):
        fail(f"owl_lambda={config.owl_lambda} with sparsity={config.sparsity}", "owl_lambda >= 0 and "
             "sparsity + 2 x owl_lambda < 1 (a block's OWL sparsity can reach up to sparsity + 2 x owl_lambda)",
             f"Use owl_lambda < {(1 - config.sparsity) / 2:.4g}. Blocks whose sparsity would be <= 0 get 0.01 "
             "(owl_clip='reference') or are rebalanced (owl_clip='rebalance').")


def _check_eps(name):
    def check(config, fail):  # linear in [s(1 - eps), s(1 + eps)]: the top block must stay below 1
        if config.sparsity * (1 + getattr(config, name)) >= 1:
            fail(f"sparsity={config.sparsity} with {name}={getattr(config, name)}", f"sparsity x (1 + {name}) < 1",
                 f"Lower {name} or sparsity.")
    return check


def _eps(name, help):
    return Param(name, help, rule=in_unit_interval, allowed="[0, 1)", searchable=True,
                 fix="Leave it unset for the method's reference value (PRUNERS[method].defaults).")


OWL_M = Param("owl_m", "OWL outlier threshold M", rule=lambda v: v > 0, searchable=True,
              allowed="a positive outlier threshold (reference: 5)", fix="Use owl_m=5.")
OWL_LAMBDA = Param("owl_lambda", "OWL half-width lambda of the block sparsities around s", searchable=True)
OWL_CLIP = Param("owl_clip", "what OWL does with a block sparsity <= 0 (auto: the authors' rule for the method)",
                 choices=lambda: sorted(OWL_CLIPS))
ALPHA_EPS = _eps("alpha_eps", "AlphaPruning half-width eps relative to s (default: the method's, 0.2 or 0.3)")
ALPHA_ESTIMATOR = Param("alpha_estimator", "AlphaPruning heavy-tail fit", choices=lambda: sorted(ALPHA_ESTIMATORS))
LAYERIF_EPS = _eps("layerif_eps", "layerif-block half-width eps relative to s (default: the method's, 0.1 or 0.3)")
SAMPLES = Param("layerif_samples", "LayerIF (computed): calibration sequences differentiated", rule=positive_int,
                allowed="a positive integer", fix="Set layerif_samples to e.g. its default.")
VALIDATION = Param("layerif_validation", "validation source for LayerIF (e.g. gsm8k)")
SCORES = Param("layerif_scores", "LayerIF: path or glob of the authors' score pickles", exclusive=True)
E1 = Param("layerif_e1", "LayerIF: lower bound of p_hat (the authors' 0.05)")
E2 = Param("layerif_e2", "LayerIF: upper bound of p_hat (the authors' 0.40)")
ON_DEGENERATE = Param("layerif_on_degenerate", "LayerIF: when all scores are equal, fail or fall back to uniform",
                      choices=DEGENERATE, fix="Pick one.")
PER_PASS = Param("layerif_layers_per_pass", "LayerIF gradients: blocks per pass (0: all)",
                 rule=lambda v: isinstance(v, int) and v >= 0, allowed="an integer >= 0 (0: every block at once)",
                 fix="Use 1 to hold one block's gradients at a time.")

ALLOCATORS: dict[str, Allocation] = {
    "uniform": Allocation(uniform),
    "owl": Allocation(owl, needs_data=True, params=(OWL_LAMBDA, OWL_M, OWL_CLIP), check=_check_owl),
    "alphapruning": Allocation(alphapruning, params=(ALPHA_EPS, ALPHA_ESTIMATOR), check=_check_eps("alpha_eps")),
    # the paper's LayerIF has no searched hyper-parameter: its e1 / e2 are the authors' constants
    "layerif": Allocation(layerif, needs_data=True, params=(SAMPLES, VALIDATION, SCORES, E1, E2, ON_DEGENERATE, PER_PASS),
                          data_unless="layerif_scores"),
    "layerif-block": Allocation(layerif_block, needs_data=True, params=(LAYERIF_EPS, SAMPLES, VALIDATION, ON_DEGENERATE),
                                check=_check_eps("layerif_eps")),
    "manual": Allocation(manual, in_grid=False),
}


def needs_calibration(config) -> bool:
    """Whether ``config.allocation`` reads calibration windows (LayerIF from pickled scores does not)."""
    return ALLOCATORS[config.allocation].reads_data(config)


def allocate(model: nn.Module, tokenizer, config, calibration: torch.Tensor | None = None,
             show_progress: bool = True) -> list[float]:
    """Per-block sparsities for ``config.allocation`` (does not prune). ``calibration`` is token ids
    (nsamples, seqlen); if None they are drawn from ``config.calibration``."""
    ids = calibration
    if ids is None and needs_calibration(config):
        from .windows import calibration_batches

        ids = calibration_batches(tokenizer, config.calibration, config.nsamples, config.seqlen, config.seed,
                                  sampling=config.calibration_sampling)
    return ALLOCATORS[config.allocation](model, ids, config, show_progress, tokenizer)
