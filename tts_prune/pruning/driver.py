"""Pruning driver (`tts_prune.prune` is its function, `tts_prune.pruning` this subpackage): the result record
and the one pruning walk, driven by the declared methods (``methods.py``) and allocations (``allocation.py``).

``prune(model, tokenizer, PruneConfig(method="wanda", sparsity=0.2, allocation="owl"))`` allocates
per-block sparsities, walks the blocks once with the calibration loop and prunes each block before
its outputs feed the next one. A structured method (ShortGPT) removes whole blocks instead.
The config is ``config.py``, saving ``save.py``, the ``prune`` command ``cli.py``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch
from torch import nn

from ..models.dtypes import DTYPES
from ..models.layers import decoder_layers, prunable_linears, weight_matrix
from .allocation import allocate, layer_weights, needs_calibration
from .calibration import LinearStats, walk_blocks
from .config import PruneConfig
from .methods import PRUNERS
from .windows import calibration_batches


# ---------------------------------------------------------------------------------------- result
@dataclass
class PruneResult:
    """What a pruning run did: per-block and per-matrix target vs achieved sparsity, and timings."""

    config: PruneConfig
    layers: pd.DataFrame
    matrices: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    removed_layers: list[int] = field(default_factory=list)
    calibration_shape: tuple[int, ...] = ()
    source_fingerprint: str | None = None

    removed_param_fraction: float | None = None
    calibration_used: str | None = None  # the calibration text really used (e.g. ShortGPT's offline stand-in)
    allocation_meta: dict = field(default_factory=dict)  # LayerIF: where its scores came from, per-type sparsities

    @property
    def global_sparsity(self) -> float:
        """Achieved: share of the original prunable decoder weights that are zero (or gone, for ShortGPT)."""
        layers = self.layers
        return float((layers["achieved_sparsity"] * layers["prunable_params"]).sum() / layers["prunable_params"].sum())

    @property
    def target_global_sparsity(self) -> float:
        """What the allocation asked for: the per-block targets weighted by prunable parameters. Equals
        ``config.sparsity`` except where clipping moved it (OWL's reference clipping)."""
        layers = self.layers
        return float((layers["target_sparsity"] * layers["prunable_params"]).sum() / layers["prunable_params"].sum())

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "global_sparsity": self.global_sparsity,
                "target_global_sparsity": self.target_global_sparsity,
                "removed_param_fraction": self.removed_param_fraction,
                "timings": self.timings, "removed_layers": self.removed_layers,
                "source_fingerprint": self.source_fingerprint,
                "calibration_shape": list(self.calibration_shape), "calibration_used": self.calibration_used,
                "allocation_meta": self.allocation_meta,
                "layers": self.layers.to_dict(orient="records"), "matrices": self.matrices.to_dict(orient="records")}


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """One row per prunable matrix: layer, linear, numel, zeros and sparsity."""
    rows = []
    for index, block in enumerate(decoder_layers(model)):
        for name, module in prunable_linears(block).items():
            w = weight_matrix(module)
            zeros = int((w == 0).sum())
            rows.append({"layer": index, "linear": name, "numel": w.numel(), "zeros": zeros, "sparsity": zeros / w.numel()})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- driver
def _prune_block(block: nn.Module, stats: dict[str, LinearStats] | None, sparsity: float | dict[str, float],
                 config: PruneConfig) -> None:
    """Prune every linear of ``block`` to ``sparsity`` (one ratio, or one per linear name: LayerIF)."""
    kernel = PRUNERS[config.method].kernel
    for name, module in prunable_linears(block).items():
        weight = weight_matrix(module)  # (out, in) view sharing storage
        target = sparsity[name] if isinstance(sparsity, dict) else sparsity
        new, mask = kernel(weight, None if stats is None else stats[name], target, config)
        if new is not None and new.data_ptr() != weight.data_ptr():  # SparseGPT updates float32 weights in place
            weight.copy_(new)
        weight[mask.to(weight.device)] = 0
        del new, mask


@torch.no_grad()
def prune(model: nn.Module, tokenizer, config: PruneConfig, calibration: torch.Tensor | None = None,
          show_progress: bool = True) -> PruneResult:
    """Prune ``model`` in place following ``config``; ``calibration`` optionally gives the token ids
    (nsamples, seqlen) to use instead of drawing them from ``config.calibration``."""
    from ..models.loading import model_fingerprint

    pruner = PRUNERS[config.method]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    fingerprint = model_fingerprint(model)
    dtype = None if config.dtype == "auto" else DTYPES[config.dtype]
    if dtype is not None and dtype != next(model.parameters()).dtype:
        model.to(dtype)
    needs_ids = pruner.needs_data or needs_calibration(config)
    ids = calibration
    if ids is None and needs_ids:
        ids = calibration_batches(tokenizer, config.calibration, config.nsamples, config.seqlen, config.seed,
                                  sampling=config.calibration_sampling)
    timings["calibration_data_s"] = time.perf_counter() - start
    torch.manual_seed(config.seed)
    if ids is not None and not isinstance(ids, torch.Tensor) and not pruner.structured:
        raise ValueError(f"calibration {config.calibration!r} gives whole samples of different lengths (ShortGPT's "
                         f"text); method={config.method!r} with allocation={config.allocation!r} needs (nsamples, "
                         "seqlen) windows: use calibration_sampling='packed' or 'document', or another source")

    if pruner.structured:
        from .shortgpt import block_influence, layers_to_remove, removal_count, remove_layers

        t = time.perf_counter()
        weights = layer_weights(model)
        block_params = [sum(p.numel() for p in b.parameters()) for b in decoder_layers(model)]
        count = removal_count(len(block_params), config.sparsity, config.shortgpt_layers)  # errors before any work
        scores = block_influence(model, calibration=ids, batch_size=config.batch_size, show_progress=show_progress)
        removed = layers_to_remove(scores, count=count) if count else []
        if config.shortgpt_layers is None and config.sparsity > 0 and not removed:
            warnings.warn(f"ShortGPT at sparsity={config.sparsity} removes round({config.sparsity} x {len(scores)}) = 0 "
                          f"of {len(scores)} blocks: the model is unchanged (the same weights as dense); use "
                          f"a sparsity above {0.5 / len(scores):.3g} to remove one block", stacklevel=2)
        removed_fraction = sum(block_params[i] for i in removed) / sum(block_params)
        remove_layers(model, removed)
        timings["prune_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - start
        layers = pd.DataFrame({"layer": range(len(scores)), "block_influence": scores,
                               "removed": [i in removed for i in range(len(scores))], "prunable_params": weights})
        layers["target_sparsity"] = layers["achieved_sparsity"] = layers["removed"].astype(float)
        return PruneResult(config, layers, sparsity_report(model), timings, removed, _shape(ids), fingerprint,
                           removed_fraction, _source(ids, config))

    t = time.perf_counter()
    ratios = allocate(model, tokenizer, config, ids, show_progress=show_progress)
    timings["allocation_s"] = time.perf_counter() - t
    t = time.perf_counter()
    per_linear = getattr(ratios, "per_linear", None)  # LayerIF: one ratio per linear (attention != MLP)
    targets = per_linear if per_linear is not None else list(ratios)
    if pruner.needs_data:
        for step in walk_blocks(model, ids, config.batch_size, show_progress, desc=f"{config.method}"):
            stats = step.collect(hessian=pruner.hessian)
            _prune_block(step.block, stats, targets[step.index], config)
    else:
        for index, block in enumerate(decoder_layers(model)):
            _prune_block(block, None, targets[index], config)
    timings["prune_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    matrices, layers = _sparsity_tables(model, ratios, per_linear)
    return PruneResult(config, layers, matrices, timings, [], _shape(ids), fingerprint,
                       calibration_used=_source(ids, config), allocation_meta=dict(getattr(ratios, "meta", {})))


def _sparsity_tables(model: nn.Module, ratios, per_linear) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-matrix and per-block target vs achieved sparsity; with per-linear targets (LayerIF) the blocks
    also get their attention and MLP targets and achieved values (``attention_target_sparsity``, ...)."""
    from .influence import module_kind

    matrices = sparsity_report(model)
    if per_linear is None:
        matrices["target_sparsity"] = matrices["layer"].map(dict(enumerate(ratios)))
    else:
        matrices["target_sparsity"] = [per_linear[r.layer][r.linear] for r in matrices.itertuples()]
    grouped = matrices.groupby("layer")[["zeros", "numel"]].sum()
    layers = pd.DataFrame({"layer": range(len(ratios)), "target_sparsity": list(ratios),
                           "achieved_sparsity": (grouped["zeros"] / grouped["numel"]).tolist(),
                           "prunable_params": layer_weights(model)})
    if per_linear is not None:
        matrices["module"] = matrices["linear"].map(module_kind)
        for kind, part in matrices.groupby("module"):
            sums = part.assign(target=part["target_sparsity"] * part["numel"]).groupby("layer")[["zeros", "numel", "target"]].sum()
            layers[f"{kind}_target_sparsity"] = (sums["target"] / sums["numel"]).reindex(layers["layer"]).to_numpy()
            layers[f"{kind}_achieved_sparsity"] = (sums["zeros"] / sums["numel"]).reindex(layers["layer"]).to_numpy()
    return matrices, layers


def _shape(ids) -> tuple[int, ...]:
    # (nsamples, seqlen) windows; whole samples of different lengths (ShortGPT's text): (nsamples, longest)
    if ids is None:
        return ()
    if isinstance(ids, torch.Tensor):
        return tuple(ids.shape)
    return (len(ids), max((len(s) for s in ids), default=0))


def _source(ids, config: PruneConfig) -> str | None:
    # The text really used: a fallback (ShortGPT's offline stand-in) says so; ids passed in keep the config's name
    return getattr(ids, "source", None) or (config.calibration if ids is not None else None)
