"""LayerIF allocation as the authors of arXiv 2604.25098 ran it: one sparsity per block *and module type*.

"Estimating Layer Quality for Large Language Models using Influence Functions" (LayerIF, arXiv 2505.23811),
as used by "Doing More With Less: Revisiting the Effectiveness of LLM Pruning for Test-Time Scaling"
(arXiv 2604.25098; their ``wanda/lib/influence_helper.py`` and ``prune.py``, read 2026-12-01):

1. per-sample scores ``{"layer_{i}_attention": x, "layer_{i}_mlp": y}``, read from their pickles
   (``PruneConfig.layerif_scores``) or computed by :mod:`.influence`;
2. per module type, the sum over samples of the positive scores (``positive_influence_aggregation``);
3. abs, min-max normalised, Savitzky-Golay smoothed (window 5, order 2, scipy's default ``mode="interp"``)
   and clipped to [0, 1] (``normalize_and_smooth``). A series shorter than the window (a 3-block model) is
   not smoothed, as their code (``len >= window_length`` or skip): no window shrinking;
4. ``p_hat = (1 - s_norm)(e2 - e1) + e1`` with s_norm the min-max of step 3 (denominator + 1e-8), e1 = 0.05,
   e2 = 0.40, times eta so that the mean weighted by each module's parameters is the target, clipped to [0, 1]
   (``allocate_layer_sparsity``), separately for attention (q, k, v, o) and MLP (gate, up, down). A module
   whose eta x p_hat exceeds 1 (high targets on few blocks) is zeroed entirely and nothing is rebalanced, as
   their code; the kit warns and records it (``meta["clipped"]``).
   A higher summed positive influence gives a *lower* sparsity there.

Where the kit departs from their code: degenerate scores (all equal, so every module would get the target:
a silent uniform) are an error, or with ``layerif_on_degenerate="uniform"`` a warned fallback recorded in
the recipe; missing keys, a different layer count or non-finite scores are errors (their code reads the
first ``num_layers`` keys and crashes on a missing one); pickles are read with an unpickler that only builds
lists, dicts, numbers and strings (and numpy scalars), never arbitrary objects.
"""
from __future__ import annotations

import glob
import hashlib
import io
import math
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.layers import decoder_layers, prunable_linears, weight_matrix
from .influence import MODULE_KINDS, module_influence, module_kind, score_key, split_train_validation

SMOOTH_WINDOW, SMOOTH_ORDER = 5, 2
_KEY = re.compile(r"layer_(\d+)_(?:attention|mlp)")
DEGENERATE = ("error", "uniform")


class ModuleAllocation(list):
    """Per-block sparsities (each block's parameter-weighted mean, so it reads like every allocator's list)
    that also carry one sparsity per linear (``per_linear[block][name]``), the per-type series
    (``by_kind["attention"|"mlp"]``) and where the scores came from (``meta``); the driver prunes each
    linear to its own target."""

    def __init__(self, per_linear: list[dict[str, float]], sizes: list[dict[str, int]], by_kind: dict, meta: dict):
        super().__init__(sum(per_linear[b][n] * sizes[b][n] for n in sizes[b]) / max(sum(sizes[b].values()), 1)
                         for b in range(len(per_linear)))
        self.per_linear, self.by_kind, self.meta = per_linear, by_kind, meta


# ------------------------------------------------------------------------------------- pickles
class _PlainUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def score_files(pattern: str) -> list[Path]:
    """The files a ``layerif_scores`` value names: one path, or a glob (sorted, as their loader's list
    ``all_influence_scores_100.pkl`` ... ``_456.pkl`` sorts)."""
    files = sorted(Path(p) for p in glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [Path(pattern)]
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise FileNotFoundError(f"layerif_scores={pattern!r} names no file{': ' + ', '.join(missing) if missing else ''}; "
                                "give a pickle path or a glob such as 'wanda/layer_influence/all_influence_scores_*.pkl'")
    return files


def load_scores(pattern: str, num_layers: int) -> tuple[dict, dict]:
    """Read and check the authors' pickles: ``({sample_id: scores}, provenance)``.

    Files are concatenated in order and keyed by ``sample_id`` as their ``influence_loader`` (a repeated id
    keeps its last record; counted in the provenance). Each record must hold exactly the keys
    ``layer_{i}_attention`` and ``layer_{i}_mlp`` for i < ``num_layers``, with finite values.
    """
    scores, files, total = {}, [], 0
    expected = {score_key(i, kind) for i in range(num_layers) for kind in MODULE_KINDS}
    for path in score_files(pattern):
        data = path.read_bytes()
        try:
            batch = _PlainUnpickler(io.BytesIO(data)).load()
        except pickle.UnpicklingError as error:
            raise ValueError(f"{path}: not a plain pickle of lists, dicts and numbers ({error}); re-save the scores "
                             "as a list of {'sample_id': int, 'scores': {key: float}}") from None
        if not isinstance(batch, list):
            raise ValueError(f"{path}: holds a {type(batch).__name__}, expected a list of "
                             "{'sample_id', 'scores'} records (the format of all_influence_scores_*.pkl)")
        for record in batch:
            if not isinstance(record, dict) or "sample_id" not in record or not isinstance(record.get("scores"), dict):
                raise ValueError(f"{path}: a record is not {{'sample_id': ..., 'scores': {{...}}}}: {str(record)[:120]}")
            keys, sid = set(record["scores"]), record["sample_id"]
            if keys != expected:
                missing, extra = sorted(expected - keys), sorted(keys - expected)
                layers = 1 + max((int(m.group(1)) for m in map(_KEY.fullmatch, map(str, keys)) if m), default=-1)
                raise ValueError(
                    f"{path}: sample {sid!r} has {'no key ' + missing[0] if missing else 'the extra key ' + extra[0]}"
                    f" ({len(missing)} missing, {len(extra)} extra): its scores cover {layers} layers, the model has "
                    f"{num_layers} decoder blocks. Use the pickles computed for this model (the authors ship "
                    "wanda/layer_influence/ for s1.1-7B and layer_influence_qwen3/ for Qwen3-8B), or leave "
                    "layerif_scores unset to compute the scores")
            bad = [k for k, x in record["scores"].items() if not math.isfinite(float(x))]
            if bad:
                raise ValueError(f"{path}: sample {sid!r} has a non-finite score at {bad[0]} "
                                 f"({record['scores'][bad[0]]}); drop or recompute that sample")
            scores[sid] = {k: float(x) for k, x in record["scores"].items()}
        total += len(batch)
        files.append({"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "records": len(batch)})
    if not scores:
        raise ValueError(f"layerif_scores={pattern!r}: the files hold no records")
    if total != len(scores):
        warnings.warn(f"layerif_scores: {total} records but {len(scores)} distinct sample ids; as the authors' loader, "
                      "the last record of a repeated id is kept", stacklevel=2)
    return scores, {"source": "pickle", "pattern": str(pattern), "files": files, "records": total,
                    "samples": len(scores)}


# ------------------------------------------------------------------------------- the allocation
def positive_sums(scores: dict, num_layers: int) -> dict[str, np.ndarray]:
    """Per module type, (num_layers,) sum over samples of the positive scores."""
    return {kind: np.array([sum(max(s[score_key(i, kind)], 0.0) for s in scores.values()) for i in range(num_layers)])
            for kind in MODULE_KINDS}


def normalize_smooth(sums: np.ndarray, window: int = SMOOTH_WINDOW, order: int = SMOOTH_ORDER) -> np.ndarray:
    """abs -> min-max to [0, 1] (equal values: zeros) -> Savitzky-Golay (skipped when the series is shorter
    than ``window``, as the authors' code) -> clip to [0, 1]."""
    from scipy.signal import savgol_filter

    a = np.abs(np.asarray(sums, dtype=np.float64))
    span = a.max() - a.min()
    normed = (a - a.min()) / span if span > 0 else np.zeros_like(a)
    if len(normed) >= window and window % 2 == 1:
        normed = savgol_filter(normed, window_length=window, polyorder=order)
    return np.clip(normed, 0.0, 1.0)


def module_sparsity(smoothed: np.ndarray, sizes: np.ndarray, target: float, e1: float = 0.05, e2: float = 0.40,
                    eps: float = 1e-8) -> np.ndarray:
    """``p = clip(eta x ((1 - s_norm)(e2 - e1) + e1), 0, 1)`` with eta making the ``sizes``-weighted mean
    ``target`` (before the clip)."""
    s = np.asarray(smoothed, dtype=np.float64)
    norm = (s - s.min()) / (s.max() - s.min() + eps)
    p_hat = (1.0 - norm) * (e2 - e1) + e1
    eta = target * sizes.sum() / ((p_hat * sizes).sum() + eps)
    return np.clip(eta * p_hat, 0.0, 1.0)


def _degenerate(kind: str, sums: np.ndarray, p: np.ndarray, config, meta: dict) -> np.ndarray:
    why = (f"LayerIF {kind} scores are degenerate: summed positive influence per block {np.round(sums, 6).tolist()} "
           f"gives every {kind} module the same sparsity {p[0]:.4f} (a uniform allocation in disguise)")
    if config.layerif_on_degenerate == "error":
        raise ValueError(f"{why}. Use more or other LayerIF samples (layerif_samples, layerif_validation) or other "
                         "scores (layerif_scores), or set layerif_on_degenerate='uniform' to accept the fallback, "
                         "which is then recorded in the recipe")
    warnings.warn(f"{why}; layerif_on_degenerate='uniform': falling back to the target {config.sparsity} "
                  "(recorded in the recipe's allocation metadata)", stacklevel=3)
    meta.setdefault("fallback", {})[kind] = "uniform: degenerate scores"
    return np.full_like(p, config.sparsity)


def allocate_modules(model: nn.Module, scores: dict, config, meta: dict) -> ModuleAllocation:
    """The per-linear sparsities of ``config.sparsity`` from checked per-sample ``scores``."""
    blocks = decoder_layers(model)
    kinds = [{name: module_kind(name) for name in prunable_linears(b)} for b in blocks]
    sizes = [{name: weight_matrix(m).numel() for name, m in prunable_linears(b).items()} for b in blocks]
    sums = positive_sums(scores, len(blocks))
    by_kind, sums_out = {}, {}
    for kind in MODULE_KINDS:
        kind_sizes = np.array([sum(n for name, n in sizes[b].items() if kinds[b][name] == kind) for b in range(len(blocks))],
                              dtype=np.float64)
        if kind_sizes.sum() == 0:
            continue
        if not np.isfinite(sums[kind]).all():
            raise ValueError(f"LayerIF {kind} sums are not finite ({sums[kind].tolist()}); recompute the scores")
        p = module_sparsity(normalize_smooth(sums[kind]), kind_sizes, config.sparsity,
                            config.layerif_e1, config.layerif_e2)
        if np.ptp(p) < 1e-12:
            p = _degenerate(kind, sums[kind], p, config, meta)
        if p.max() >= 1.0:  # their clip to [0, 1]: such a module is zeroed entirely and the mean falls short
            meta.setdefault("clipped", {})[kind] = [i for i, x in enumerate(p) if x >= 1.0]
            warnings.warn(f"LayerIF at sparsity {config.sparsity}: eta x p_hat reaches 1 for the {kind} of blocks "
                          f"{meta['clipped'][kind]}; clipped to 1 (every weight zeroed) without rebalancing, as the "
                          "authors' code, so the achieved mean is below the target", stacklevel=2)
        by_kind[kind], sums_out[kind] = [float(x) for x in p], [float(x) for x in sums[kind]]
    per_linear = [{name: by_kind[kinds[b][name]][b] for name in sizes[b]} for b in range(len(blocks))]
    meta.update({"positive_sums": sums_out, "sparsity": by_kind, "e1": config.layerif_e1, "e2": config.layerif_e2,
                 "smoothing": f"savgol window {SMOOTH_WINDOW} order {SMOOTH_ORDER}" if len(blocks) >= SMOOTH_WINDOW
                 else f"none ({len(blocks)} blocks < window {SMOOTH_WINDOW}, as the authors' code)"})
    return ModuleAllocation(per_linear, sizes, by_kind, meta)


def layerif(model, ids, config, show_progress=True, tokenizer=None) -> ModuleAllocation:
    """LayerIF as arXiv 2604.25098 ran it (module docstring): scores from ``config.layerif_scores`` (the
    authors' pickles) or computed on ``layerif_samples`` calibration windows, half train and half validation,
    or all train with ``layerif_validation`` windows as validation (:func:`.influence.module_influence`)."""
    num_layers = len(decoder_layers(model))
    if config.layerif_scores:
        scores, meta = load_scores(config.layerif_scores, num_layers)
    else:
        train, validation = layerif_windows(ids, config, tokenizer)
        records = module_influence(model, train, validation, layers_per_pass=config.layerif_layers_per_pass or None,
                                   show_progress=show_progress)
        scores = {r["sample_id"]: r["scores"] for r in records}
        meta = {"source": "computed", "train": int(train.shape[0]), "validation": int(validation.shape[0]),
                "validation_source": config.layerif_validation or "second half of the calibration windows",
                "seqlen": int(train.shape[1]), "influence": "DataInf closed form per weight matrix (damping 0.1), "
                "exact per-sample gradients of the linear weights", "records": records}
    return allocate_modules(model, scores, config, meta)


def layerif_windows(ids: torch.Tensor, config, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation windows for computed LayerIF scores (shared with ``layerif-block``):
    ``layerif_samples`` in all; with ``layerif_validation`` (a calibration source) half are calibration
    windows (train) and half windows of that source drawn with seed + 1; without it both halves are
    calibration windows."""
    n_val = config.layerif_samples // 2
    if config.layerif_validation is None:
        return split_train_validation(ids[: config.layerif_samples], None)
    if tokenizer is None:
        raise ValueError(f"layerif_validation={config.layerif_validation!r} needs a tokenizer to draw the "
                         "validation windows; pass the model's tokenizer to allocate()/prune()")
    from .windows import calibration_batches

    validation = calibration_batches(tokenizer, config.layerif_validation, max(n_val, 1), ids.shape[1], config.seed + 1)
    return ids[: max(config.layerif_samples - n_val, 1)], validation


def check_layerif_config(config, fail) -> None:
    """PruneConfig's cross-field checks of the LayerIF fields (``fail(what, allowed, fix)`` raises); the
    single-field ones are the declared parameters of ``layerif`` in ``allocation.ALLOCATORS``."""
    if not 0 <= config.layerif_e1 < config.layerif_e2 <= 1:
        fail(f"layerif_e1={config.layerif_e1}, layerif_e2={config.layerif_e2}", "0 <= e1 < e2 <= 1",
             "Leave them unset for the authors' 0.05 / 0.40.")
    if config.wanda_scope == "auto":  # resolved here so that the recipe records what ran
        object.__setattr__(config, "wanda_scope", "matrix" if (config.allocation, config.method) == ("layerif", "wanda") else "row")


def scores_note(meta: dict) -> str:
    """One sentence on which LayerIF scores ran, for the model card (empty for other allocations)."""
    if not meta:
        return ""
    if meta.get("source") == "pickle":
        files = ", ".join(f"`{f['path']}` (sha256 {f['sha256'][:12]})" for f in meta["files"])
        what = f" LayerIF scores from the authors' pickle format: {files}, {meta['samples']} samples."
    else:
        what = (f" LayerIF scores computed by the kit: {meta['influence']}, {meta['train']} train and "
                f"{meta['validation']} validation sequences ({meta['validation_source']}).")
    fallback = meta.get("fallback")
    return what + (f" **Fallback: {fallback}** (degenerate scores)." if fallback else "")
