"""Pruning driver (`tts_prune.prune` is its function, `tts_prune.pruning` this subpackage): a validated config,
a registry of methods, a result record and a saved recipe.

``prune(model, tokenizer, PruneConfig(method="wanda", sparsity=0.2, allocation="owl"))`` allocates
per-block sparsities, walks the blocks once with the calibration loop and prunes each block before
its outputs feed the next one. ShortGPT removes whole blocks instead.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .. import __version__
from .allocation import ALLOCATORS, OWL_CLIPS, allocate, layer_weights, needs_calibration
from .calibration import LinearStats, walk_blocks
from .windows import SAMPLERS, calibration_batches
from ..models.dtypes import DTYPES
from ..models.layers import decoder_layers, prunable_linears, weight_matrix
from .kernels import ALPHA_ESTIMATORS, magnitude_mask, parse_nm, sparsegpt_prune, wanda_mask
from .layerif import DEGENERATE, check_layerif_config, scores_note



# --------------------------------------------------------------------------------------- methods
def _magnitude(weight, stats, sparsity, config):
    return None, magnitude_mask(weight, sparsity, config.magnitude_scope, parse_nm(config.nm), config.rounding)


def _wanda(weight, stats, sparsity, config):
    return None, wanda_mask(weight, stats.sq_norm, sparsity, parse_nm(config.nm), config.rounding, config.wanda_scope)


def _sparsegpt(weight, stats, sparsity, config):
    hessian, stats.hessian = stats.hessian, None  # the kernel factorises it in place; nothing else keeps it
    return sparsegpt_prune(weight, hessian, sparsity, parse_nm(config.nm), config.blocksize, config.percdamp,
                           config.rounding, in_place=True)


ROUNDINGS = ("exact", "floor")
# Each method's reference calibration data when PruneConfig leaves it unset: ShortGPT's own (the authors'
# `--calibration_data shortgpt --n_samples 100 --max_seq_len 1024`, see pg19.py), else bundled GSM8K
# windows of wanda/SparseGPT's 128 x 2048 (the papers' C4 needs the network: calibration="allenai/c4").
METHOD_CALIBRATION = {"shortgpt": {"calibration": "shortgpt", "nsamples": 100, "seqlen": 1024},
                      None: {"calibration": "gsm8k", "nsamples": 128, "seqlen": 2048}}
# Reference epsilons per method: LayerIF's scripts (0.1 Wanda / SparseGPT, 0.3 magnitude) and
# AlphaPruning's scripts/llama_7b.sh (0.2 Wanda / SparseGPT, 0.3 magnitude).
LAYERIF_EPS = {"wanda": 0.1, "sparsegpt": 0.1, "magnitude": 0.3}
ALPHA_EPS = {"wanda": 0.2, "sparsegpt": 0.2, "magnitude": 0.3}


@dataclass(frozen=True)
class Pruner:
    """A pruning method: ``kernel(weight (out,in), stats, sparsity, config) -> (new weight or None, mask)``.
    ``structured`` methods (ShortGPT) remove blocks and have no kernel."""

    kernel: Callable | None
    needs_data: bool
    hessian: bool = False
    structured: bool = False


PRUNERS: dict[str, Pruner] = {
    "magnitude": Pruner(_magnitude, needs_data=False),
    "wanda": Pruner(_wanda, needs_data=True),
    "sparsegpt": Pruner(_sparsegpt, needs_data=True, hessian=True),
    "shortgpt": Pruner(None, needs_data=True, structured=True),
}


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class PruneConfig:
    """Everything that defines a pruning run; validated on construction.

    ``sparsity`` is the fraction of prunable decoder weights set to zero (for ShortGPT: the fraction of
    blocks removed, ``round(s x L)``). ``shortgpt_layers`` (ShortGPT only) removes that many blocks instead,
    as the authors' ``--remove_n_layers N``; given together with ``sparsity`` they must agree on the model
    (checked when its block count is known), and 1 <= N <= L - 1.
    ``calibration`` / ``nsamples`` / ``seqlen`` default (None) to the method's reference data
    (:data:`METHOD_CALIBRATION`): ShortGPT's own text (PG19 validation chunks, 100 samples of at most 1024
    tokens, see ``pg19.py``), else bundled GSM8K in 128 windows of 2048 tokens. ``owl_clip`` "auto" is what
    the authors' code does with a block whose OWL sparsity comes out <= 0: 0.01 for Wanda (``prune_wanda_outlier``,
    as OWL's own code) and 0, nothing pruned, for magnitude (``prune_mag_outlier`` prunes ``int(numel x s)``
    weights only when that is positive). ``nm`` ("2:4", "4:8") forces N zeros in every M inputs and then
    ``sparsity`` must be N/M with uniform allocation. ``rounding="exact"`` makes every matrix lose
    ``round(numel x s_block)`` weights (the remainder of the per-row floor spread over rows);
    ``"floor"`` is the Wanda / SparseGPT reference rule, ``floor(in x s)`` per row (or per SparseGPT block).
    ``calibration_sampling``: "auto", "document" (windows inside one document, as wanda's C4 loader) or
    "packed". ``layerif_eps`` / ``alpha_eps`` default (None) to the reference scripts' value for the method.

    LayerIF (``allocation="layerif"``, the paper's, see ``pruning/layerif.py``): ``layerif_scores`` is a
    path or glob of the authors' pickles (None: the kit computes the scores on ``layerif_samples``
    calibration windows, validation from ``layerif_validation``, ``layerif_layers_per_pass`` blocks of
    gradients at a time, 0 = all); ``layerif_e1`` / ``layerif_e2`` bound p_hat (0.05 / 0.40 as their code);
    ``layerif_on_degenerate``: "error" or "uniform" (a warned, recorded fallback) when the scores are all
    equal. ``wanda_scope``: "row" (Wanda), "matrix" (their LayerIF pruning ranks the Wanda metric over the
    whole matrix) or "auto" (matrix with ``layerif``, else row). ``layerif_eps`` is ``layerif-block``'s.
    """

    method: str
    sparsity: float | None = None
    allocation: str = "uniform"
    nm: str | None = None
    magnitude_scope: str = "matrix"
    nsamples: int | None = None
    seqlen: int | None = None
    seed: int = 0
    calibration: str | None = None
    owl_m: float = 5.0
    owl_lambda: float = 0.08
    owl_clip: str = "auto"
    layerif_eps: float | None = None
    layerif_samples: int = 16
    layerif_validation: str | None = None
    layerif_scores: str | None = None
    layerif_e1: float = 0.05
    layerif_e2: float = 0.40
    layerif_on_degenerate: str = "error"
    layerif_layers_per_pass: int = 0
    wanda_scope: str = "auto"
    alpha_eps: float | None = None
    alpha_estimator: str = "peak"
    rounding: str = "exact"
    calibration_sampling: str = "auto"
    layer_sparsities: tuple[float, ...] | None = None
    dtype: str = "auto"
    batch_size: int = 1
    blocksize: int = 128
    percdamp: float = 0.01
    shortgpt_layers: int | None = None

    def __post_init__(self):
        def fail(what, allowed, fix):
            raise ValueError(f"PruneConfig: {what}; allowed: {allowed}. {fix}")

        if self.method not in PRUNERS:
            fail(f"method={self.method!r} is unknown", sorted(PRUNERS), "Pick one of those names.")
        if self.allocation not in ALLOCATORS:
            fail(f"allocation={self.allocation!r} is unknown", sorted(ALLOCATORS), "Pick one of those names.")
        if self.shortgpt_layers is not None:
            if self.method != "shortgpt":
                fail(f"shortgpt_layers={self.shortgpt_layers!r} with method={self.method!r}", "method='shortgpt'",
                     "Drop shortgpt_layers, or use method='shortgpt'.")
            if isinstance(self.shortgpt_layers, bool) or not isinstance(self.shortgpt_layers, int) or self.shortgpt_layers < 1:
                fail(f"shortgpt_layers={self.shortgpt_layers!r}", "a whole number of blocks >= 1 (at most L - 1)",
                     "E.g. shortgpt_layers=2 removes the two lowest-Block-Influence blocks.")
        elif self.sparsity is None:
            fail(f"sparsity is missing for method={self.method!r}", "a float in [0, 1)" + (
                 ", or shortgpt_layers" if self.method == "shortgpt" else ""), "E.g. sparsity=0.2 for 20%.")
        if self.sparsity is not None and (isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float))
                                          or not 0 <= self.sparsity < 1):
            fail(f"sparsity={self.sparsity!r} is out of range", "a float in [0, 1)", "E.g. sparsity=0.2 for 20%.")
        for name, value in METHOD_CALIBRATION.get(self.method, METHOD_CALIBRATION[None]).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.owl_clip == "auto":
            object.__setattr__(self, "owl_clip", "zero" if self.method == "magnitude" else "reference")
        if self.layer_sparsities is not None:
            object.__setattr__(self, "layer_sparsities", tuple(float(x) for x in self.layer_sparsities))
            if self.allocation not in ("uniform", "manual"):
                fail(f"layer_sparsities together with allocation={self.allocation!r}", "one of the two",
                     "Drop layer_sparsities, or leave allocation at its default (explicit lists mean 'manual').")
            object.__setattr__(self, "allocation", "manual")
            if any(not 0 <= x < 1 for x in self.layer_sparsities):
                fail(f"layer_sparsities={list(self.layer_sparsities)} has a ratio outside [0, 1)",
                     "ratios in [0, 1)", "Fix the offending entries.")
        elif self.allocation == "manual":
            fail("allocation='manual' needs layer_sparsities", "a list with one ratio per block",
                 "Pass layer_sparsities=[...].")
        if self.magnitude_scope not in ("matrix", "row"):
            fail(f"magnitude_scope={self.magnitude_scope!r}", "'matrix' or 'row'", "Pick one.")
        if self.nm is not None:
            n, m = parse_nm(self.nm)
            if self.method not in ("magnitude", "wanda", "sparsegpt"):
                fail(f"nm={self.nm!r} with method={self.method!r}", "N:M with magnitude, wanda or sparsegpt",
                     "Drop nm or change the method.")
            if abs(self.sparsity - n / m) > 1e-9 or self.allocation != "uniform":
                fail(f"nm={self.nm!r} with sparsity={self.sparsity} and allocation={self.allocation!r}",
                     f"sparsity={n / m} and allocation='uniform' (N:M fixes every block's sparsity)",
                     f"Use sparsity={n / m}, allocation='uniform'.")
        if PRUNERS[self.method].structured and self.allocation != "uniform":
            fail(f"allocation={self.allocation!r} with method={self.method!r}", "'uniform'",
                 "ShortGPT removes whole blocks; layer-wise allocation does not apply.")
        if self.allocation == "owl" and not (0 <= self.owl_lambda and self.sparsity + 2 * self.owl_lambda < 1):
            fail(f"owl_lambda={self.owl_lambda} with sparsity={self.sparsity}", "owl_lambda >= 0 and "
                 "sparsity + 2 x owl_lambda < 1 (a block's OWL sparsity can reach up to sparsity + 2 x owl_lambda)",
                 f"Use owl_lambda < {(1 - self.sparsity) / 2:.4g}. Blocks whose sparsity would be <= 0 get 0.01 "
                 "(owl_clip='reference') or are rebalanced (owl_clip='rebalance').")
        if self.owl_m <= 0:
            fail(f"owl_m={self.owl_m}", "a positive outlier threshold (reference: 5)", "Use owl_m=5.")
        for name, choices in (("owl_clip", sorted(OWL_CLIPS)), ("alpha_estimator", sorted(ALPHA_ESTIMATORS)),
                              ("rounding", list(ROUNDINGS)), ("calibration_sampling", ["auto", *sorted(SAMPLERS)])):
            if getattr(self, name) not in choices:
                fail(f"{name}={getattr(self, name)!r} is unknown", choices, "Pick one of those names.")
        for name, table in (("layerif_eps", LAYERIF_EPS), ("alpha_eps", ALPHA_EPS)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, table.get(self.method))
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                fail(f"{name}={value}", "[0, 1)", f"Leave it unset for the reference value ({table}).")
        if self.allocation == "alphapruning" and self.sparsity * (1 + self.alpha_eps) >= 1:
            fail(f"sparsity={self.sparsity} with alpha_eps={self.alpha_eps}", "sparsity x (1 + alpha_eps) < 1",
                 "Lower alpha_eps or sparsity.")
        if self.allocation == "layerif-block" and self.sparsity * (1 + self.layerif_eps) >= 1:
            fail(f"sparsity={self.sparsity} with layerif_eps={self.layerif_eps}", "sparsity x (1 + layerif_eps) < 1",
                 "Lower layerif_eps or sparsity.")
        check_layerif_config(self, fail)
        for name in ("nsamples", "seqlen", "batch_size", "blocksize", "layerif_samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(f"{name}={getattr(self, name)!r}", "a positive integer", f"Set {name} to e.g. its default.")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            fail(f"dtype={self.dtype!r}", ["auto", *sorted(DTYPES)], "Use 'auto' to keep the model's dtype.")
        if not 0 <= self.percdamp < 1:
            fail(f"percdamp={self.percdamp}", "[0, 1)", "Use 0.01 (SparseGPT's 1%).")


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


def achieved_label(result: PruneResult) -> str:
    """A short label of what was really removed, for plots and model cards: "20.0% of prunable weights",
    or for ShortGPT "3 of 28 blocks (10.7% of decoder parameters)"."""
    if result.removed_param_fraction is not None:
        return (f"{len(result.removed_layers)} of {len(result.layers)} blocks "
                f"({result.removed_param_fraction:.1%} of decoder parameters)")
    return f"{result.global_sparsity:.1%} of prunable weights"


# ------------------------------------------------------------------------------------------ save
_CARD = """# {name}

Pruned from `{source}` with tts-prune {version}: method **{method}**, target sparsity {sparsity},
allocation {allocation}{nm}. Achieved sparsity over prunable decoder weights: {achieved:.4f}
(target {target:.4f}). {label}.
Calibration: {calibration}.{allocation_note} Full recipe in `pruning_recipe.json`.

{honesty}
"""
_UNSTRUCTURED = ("The zeros are unstructured: this dense checkpoint is **not smaller and not faster** than "
                 "the original with dense kernels (same shapes, same file size). Only sparse-aware kernels "
                 "(e.g. 2:4 on recent GPUs) or a sparse storage format could turn them into savings.")
_STRUCTURED = ("ShortGPT removed whole decoder blocks ({removed}); the checkpoint really is smaller and "
               "faster, and its config has fewer layers.")


def save_pruned(model: nn.Module, tokenizer, result: PruneResult, out_dir, source: str | None = None) -> Path:
    """Write safetensors, tokenizer, ``pruning_recipe.json`` and a short ``README.md`` model card."""
    from ..models.loading import model_fingerprint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    source = source or getattr(model.config, "_name_or_path", "") or "unknown"
    config = result.config
    recipe = {
        "method": config.method, "allocation": config.allocation, "sparsity": config.sparsity, "nm": config.nm,
        "layer_sparsities": result.layers["target_sparsity"].tolist(),
        "achieved_layer_sparsities": result.layers["achieved_sparsity"].tolist(),
        "global_sparsity": result.global_sparsity, "target_global_sparsity": result.target_global_sparsity,
        "removed_layers": result.removed_layers,
        # ShortGPT: round(s x L) blocks go, so the achieved share of decoder-block parameters is not s
        "removed_param_fraction": result.removed_param_fraction, "shortgpt_layers": config.shortgpt_layers,
        "achieved_label": achieved_label(result),
        "calibration": {"source": config.calibration, "used": result.calibration_used, "nsamples": config.nsamples,
                        "seqlen": config.seqlen, "seed": config.seed, "shape": list(result.calibration_shape)},
        "config": asdict(config), "timings": result.timings,
        # LayerIF: which scores ran (pickle paths + sha256, or computed + settings) and the per-type sparsities
        "allocation_meta": result.allocation_meta,
        "source_model": source, "source_fingerprint": result.source_fingerprint,
        "pruned_fingerprint": model_fingerprint(model), "tts_prune_version": __version__,
    }
    (out / "pruning_recipe.json").write_text(json.dumps(recipe, indent=2, default=str))
    honesty = (_STRUCTURED.format(removed=result.removed_layers) if PRUNERS[config.method].structured
               else _UNSTRUCTURED)
    target = config.sparsity if config.shortgpt_layers is None else f"-{config.shortgpt_layers} blocks"
    (out / "README.md").write_text(_CARD.format(
        name=out.name, source=source, version=__version__, method=config.method, sparsity=target,
        allocation=config.allocation, nm=f", N:M {config.nm}" if config.nm else "", achieved=result.global_sparsity,
        target=result.target_global_sparsity, label=achieved_label(result),
        calibration=f"{result.calibration_used or config.calibration}, {config.nsamples} x {config.seqlen} tokens, "
                    f"seed {config.seed}",
        allocation_note=scores_note(result.allocation_meta), honesty=honesty))
    return out


# ------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models.embedded import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help="embedded name, local dir, .gguf file or hub id")
    parser.add_argument("--method", required=True, choices=sorted(PRUNERS))
    parser.add_argument("--sparsity", type=float, default=None, help="fraction of prunable weights (or blocks) removed")
    parser.add_argument("--shortgpt-layers", type=int, default=None, help="shortgpt: number of blocks to remove")
    parser.add_argument("--allocation", default="uniform", choices=sorted(ALLOCATORS))
    parser.add_argument("--nm", default=None, help="N:M pattern such as 2:4 (sparsity must be N/M)")
    parser.add_argument("--magnitude-scope", default="matrix", choices=["matrix", "row"])
    parser.add_argument("--nsamples", type=int, default=None, help="default: the method's (128; shortgpt 100)")
    parser.add_argument("--seqlen", type=int, default=None, help="default: the method's (2048; shortgpt 1024)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", default=None, help="gsm8k (default), shortgpt (shortgpt's default), pg19, "
                        "builtin, a text/JSONL path or an HF dataset id")
    parser.add_argument("--owl-m", type=float, default=5.0)
    parser.add_argument("--owl-lambda", type=float, default=0.08)
    parser.add_argument("--owl-clip", default="auto", choices=["auto", *sorted(OWL_CLIPS)])
    parser.add_argument("--layerif-eps", type=float, default=None, help="default: 0.1 wanda/sparsegpt, 0.3 magnitude")
    parser.add_argument("--layerif-validation", default=None, help="validation source for LayerIF (e.g. gsm8k)")
    parser.add_argument("--layerif-scores", default=None, help="LayerIF: path or glob of the authors' score pickles")
    parser.add_argument("--layerif-on-degenerate", default="error", choices=list(DEGENERATE))
    parser.add_argument("--layerif-layers-per-pass", type=int, default=0, help="LayerIF gradients: blocks per pass (0: all)")
    parser.add_argument("--wanda-scope", default="auto", choices=["auto", "row", "matrix"],
                        help="auto: per matrix with layerif (as the paper's code), else per row")
    parser.add_argument("--alpha-eps", type=float, default=None, help="default: 0.2 wanda/sparsegpt, 0.3 magnitude")
    parser.add_argument("--alpha-estimator", default="peak", choices=sorted(ALPHA_ESTIMATORS))
    parser.add_argument("--rounding", default="exact", choices=list(ROUNDINGS))
    parser.add_argument("--calibration-sampling", default="auto", choices=["auto", *sorted(SAMPLERS)])
    parser.add_argument("--layer-sparsities", default=None, help="comma-separated per-block ratios (manual allocation)")
    parser.add_argument("--dtype", default="auto", help="auto (fp32 on CPU), float32, bfloat16")
    parser.add_argument("--device-map", default=None, help="'auto' to spread a large model over devices")
    parser.add_argument("--out", required=True, help="output directory for the pruned model")


def run(args: argparse.Namespace) -> int:
    from ..models.loading import load_model

    layer_sparsities = [float(x) for x in args.layer_sparsities.split(",")] if args.layer_sparsities else None
    config = PruneConfig(
        method=args.method, sparsity=args.sparsity, allocation=args.allocation, nm=args.nm,
        magnitude_scope=args.magnitude_scope, nsamples=args.nsamples, seqlen=args.seqlen, seed=args.seed,
        calibration=args.calibration, owl_m=args.owl_m, owl_lambda=args.owl_lambda, owl_clip=args.owl_clip,
        layerif_eps=args.layerif_eps, layerif_validation=args.layerif_validation, alpha_eps=args.alpha_eps,
        layerif_scores=args.layerif_scores, layerif_on_degenerate=args.layerif_on_degenerate,
        layerif_layers_per_pass=args.layerif_layers_per_pass, wanda_scope=args.wanda_scope,
        alpha_estimator=args.alpha_estimator, rounding=args.rounding, calibration_sampling=args.calibration_sampling,
        layer_sparsities=layer_sparsities, dtype=args.dtype, shortgpt_layers=args.shortgpt_layers)
    model, tokenizer = load_model(args.model, dtype=args.dtype, device_map=args.device_map)
    result = prune(model, tokenizer, config)
    out = save_pruned(model, tokenizer, result, args.out, source=args.model)
    print(result.layers.to_string(index=False))
    print(f"global sparsity {result.global_sparsity:.4f} (target {result.target_global_sparsity:.4f}) in {result.timings['total_s']:.1f} s; saved to {out}")
    return 0
