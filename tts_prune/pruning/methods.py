"""The pruning methods, each declared once (:class:`~.declare.Method`): registry :data:`PRUNERS`.

A method's kernel is ``(weight (out, in), stats, sparsity, config) -> (new weight or None, mask)``; the math
is in ``kernels.py`` (pure functions on tensors), ShortGPT's block removal in ``shortgpt.py``. Adding a
method: write its kernel, declare it here (or register it from its own module: ``PRUNERS["name"] =
Method(...)``); PruneConfig, the ``prune`` CLI, the study grid and the selection search read the registry.
"""
from __future__ import annotations

from .declare import Method, Param, positive_int
from .kernels import magnitude_mask, parse_nm, sparsegpt_prune, wanda_mask


def _magnitude(weight, stats, sparsity, config):
    return None, magnitude_mask(weight, sparsity, config.magnitude_scope, parse_nm(config.nm), config.rounding)


def _wanda(weight, stats, sparsity, config):
    return None, wanda_mask(weight, stats.sq_norm, sparsity, parse_nm(config.nm), config.rounding, config.wanda_scope)


def _sparsegpt(weight, stats, sparsity, config):
    hessian, stats.hessian = stats.hessian, None  # the kernel factorises it in place; nothing else keeps it
    return sparsegpt_prune(weight, hessian, sparsity, parse_nm(config.nm), config.blocksize, config.percdamp,
                           config.rounding, in_place=True)


def _check_nm(config, fail) -> None:
    # N:M fixes every block's sparsity: only N/M with a uniform allocation is consistent
    if config.nm is None:
        return
    n, m = parse_nm(config.nm)
    if abs(config.sparsity - n / m) > 1e-9 or config.allocation != "uniform":
        fail(f"nm={config.nm!r} with sparsity={config.sparsity} and allocation={config.allocation!r}",
             f"sparsity={n / m} and allocation='uniform' (N:M fixes every block's sparsity)",
             f"Use sparsity={n / m}, allocation='uniform'.")


NM = Param("nm", "N:M pattern such as 2:4 (sparsity must be N/M)", exclusive=True)
MAGNITUDE_SCOPE = Param("magnitude_scope", "magnitude: rank |W| per matrix or per output row", choices=("matrix", "row"),
                        fix="Pick one.")
WANDA_SCOPE = Param("wanda_scope", "auto: per matrix with layerif (as the paper's code), else per row",
                    choices=("auto", "row", "matrix"), fix="Pick one.")
BLOCKSIZE = Param("blocksize", "SparseGPT: columns per OBS block", rule=positive_int, allowed="a positive integer",
                  fix="Set blocksize to e.g. its default.")
PERCDAMP = Param("percdamp", "SparseGPT: dampening, a share of the Hessian's mean diagonal",
                 rule=lambda v: 0 <= v < 1, allowed="[0, 1)", fix="Use 0.01 (SparseGPT's 1%).")
SHORTGPT_LAYERS = Param("shortgpt_layers", "shortgpt: number of blocks to remove", exclusive=True,
                        rule=positive_int, allowed="a whole number of blocks >= 1 (at most L - 1)",
                        fix="E.g. shortgpt_layers=2 removes the two lowest-Block-Influence blocks.")

# Reference calibration data of the data-driven methods: bundled GSM8K windows of wanda/SparseGPT's
# 128 x 2048 (the papers' C4 needs the network: calibration="allenai/c4"). Reference epsilons: LayerIF's
# scripts (0.1 Wanda / SparseGPT, 0.3 magnitude) and AlphaPruning's scripts/llama_7b.sh (0.2 / 0.3).
WINDOWS = {"calibration": "gsm8k", "nsamples": 128, "seqlen": 2048}

PRUNERS: dict[str, Method] = {
    "magnitude": Method(_magnitude, needs_data=False, params=(NM, MAGNITUDE_SCOPE), check=_check_nm,
                        # the authors' magnitude + OWL prunes nothing in a block whose sparsity is <= 0
                        defaults={**WINDOWS, "layerif_eps": 0.3, "alpha_eps": 0.3, "owl_clip": "zero"}),
    "wanda": Method(_wanda, needs_data=True, params=(NM, WANDA_SCOPE), check=_check_nm,
                    defaults={**WINDOWS, "layerif_eps": 0.1, "alpha_eps": 0.2}),
    "sparsegpt": Method(_sparsegpt, needs_data=True, stats=("sq_norm", "hessian"), params=(NM, BLOCKSIZE, PERCDAMP),
                        check=_check_nm, defaults={**WINDOWS, "layerif_eps": 0.1, "alpha_eps": 0.2}),
    # ShortGPT's own data: the authors' `--calibration_data shortgpt --n_samples 100 --max_seq_len 1024` (pg19.py)
    "shortgpt": Method(None, needs_data=True, structured=True, params=(SHORTGPT_LAYERS,),
                       defaults={"calibration": "shortgpt", "nsamples": 100, "seqlen": 1024}),
}
METHODS = PRUNERS  # the same registry, by the name the declarations use


def structured(method: str) -> bool:
    """Whether ``method`` removes whole blocks (then only the ``uniform`` allocation applies)."""
    return method in PRUNERS and PRUNERS[method].structured


def reads(method: str, name: str) -> bool:
    """Whether ``method`` declares the parameter ``name`` (e.g. which methods take ``shortgpt_layers``)."""
    return method in PRUNERS and any(p.name == name for p in PRUNERS[method].params)
