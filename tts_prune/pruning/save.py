"""Saving a pruned model: safetensors, tokenizer, ``pruning_recipe.json`` (its :class:`~.recipe.Recipe`
included) and a short, honest ``README.md`` model card."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from torch import nn

from .. import __version__
from .layerif import scores_note
from .methods import structured
from .recipe import Recipe


def achieved_label(result) -> str:
    """A short label of what was really removed, for plots and model cards: "20.0% of prunable weights",
    or for ShortGPT "3 of 28 blocks (10.7% of decoder parameters)"."""
    if result.removed_param_fraction is not None:
        return (f"{len(result.removed_layers)} of {len(result.layers)} blocks "
                f"({result.removed_param_fraction:.1%} of decoder parameters)")
    return f"{result.global_sparsity:.1%} of prunable weights"


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


def save_pruned(model: nn.Module, tokenizer, result, out_dir, source: str | None = None) -> Path:
    """Write safetensors, tokenizer, ``pruning_recipe.json`` and a short ``README.md`` model card for a
    ``PruneResult`` (``driver.py``)."""
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
        # what the model is, as 04-tts-scaling checks it (``Recipe.from_dict``) and its stable key
        "recipe": Recipe.from_config(config).to_dict(), "recipe_key": Recipe.from_config(config).key,
        "source_model": source, "source_fingerprint": result.source_fingerprint,
        "pruned_fingerprint": model_fingerprint(model), "tts_prune_version": __version__,
    }
    (out / "pruning_recipe.json").write_text(json.dumps(recipe, indent=2, default=str))
    honesty = (_STRUCTURED.format(removed=result.removed_layers) if structured(config.method)
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
