"""``PruneConfig``: everything that defines a pruning run, validated on construction from the declarations.

The fields and their defaults are the dataclass's (one place); which method or allocation reads a field, its
allowed values, help text, reference values and cross-field rules are declared by that method
(``methods.PRUNERS``) or allocation (``allocation.ALLOCATORS``), or here for the fields every run has
(:data:`CORE`). ``PruneConfig.__post_init__`` walks those declarations; the ``prune`` CLI is built from them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models.dtypes import DTYPES
from .allocation import ALLOCATORS
from .declare import Param, positive_int
from .layerif import check_layerif_config
from .methods import PRUNERS, WINDOWS
from .windows import SAMPLERS

ROUNDINGS = ("exact", "floor")
# Reference values for a method that declares none of its own (``Method.defaults`` override them)
FALLBACK = {**WINDOWS, "owl_clip": "reference"}


def _positive(name):
    return Param(name, "", rule=positive_int, allowed="a positive integer", fix=f"Set {name} to e.g. its default.")


CORE: tuple[Param, ...] = (
    Param("method", "pruning method", choices=lambda: sorted(PRUNERS)),
    Param("sparsity", "fraction of prunable weights (or blocks) removed"),
    Param("allocation", "layer-wise sparsity allocation", choices=lambda: sorted(ALLOCATORS)),
    Param("nsamples", "calibration sequences (default: the method's, 128; shortgpt 100)", rule=positive_int,
          allowed="a positive integer", fix="Set nsamples to e.g. its default."),
    Param("seqlen", "tokens per calibration sequence (default: the method's, 2048; shortgpt 1024)", rule=positive_int,
          allowed="a positive integer", fix="Set seqlen to e.g. its default."),
    Param("seed", "seed of the calibration windows"),
    Param("calibration", "gsm8k (default), shortgpt (shortgpt's default), pg19, builtin, a text/JSONL path or an "
          "HF dataset id"),
    Param("rounding", "exact: round(numel x s) per matrix; floor: the references' floor(in x s) per row",
          choices=ROUNDINGS),
    Param("calibration_sampling", "windows inside one document, packed, or auto", choices=lambda: ["auto", *sorted(SAMPLERS)]),
    Param("layer_sparsities", "comma-separated per-block ratios (manual allocation)"),
    Param("dtype", "auto (fp32 on CPU), float32, bfloat16", choices=lambda: ["auto", *sorted(DTYPES)],
          fix="Use 'auto' to keep the model's dtype."),
    Param("batch_size", "calibration sequences per forward pass", rule=positive_int, allowed="a positive integer",
          fix="Set batch_size to e.g. its default."),
)


def declarations() -> dict[str, list]:
    """Every declared parameter name -> [Param, owners...]: ("method", name) / ("allocation", name) / ("core",)."""
    out: dict[str, list] = {p.name: [p, ("core",)] for p in CORE}
    for kind, registry in (("method", PRUNERS), ("allocation", ALLOCATORS)):
        for name, entry in registry.items():
            for param in entry.params:
                if param.name in out and out[param.name][0] is not param:
                    raise TypeError(f"parameter {param.name!r} of {kind} {name!r} is declared twice, differently; "
                                    "declare it once and share the Param object")
                out.setdefault(param.name, [param]).append((kind, name))
    return out


@dataclass(frozen=True)
class PruneConfig:
    """Everything that defines a pruning run; validated on construction.

    ``sparsity`` is the fraction of prunable decoder weights set to zero (for ShortGPT: the fraction of
    blocks removed, ``round(s x L)``). ``shortgpt_layers`` (ShortGPT only) removes that many blocks instead,
    as the authors' ``--remove_n_layers N``; given together with ``sparsity`` they must agree on the model
    (checked when its block count is known), and 1 <= N <= L - 1.
    ``calibration`` / ``nsamples`` / ``seqlen`` default (None) to the method's reference data
    (``PRUNERS[method].defaults``): ShortGPT's own text (PG19 validation chunks, 100 samples of at most 1024
    tokens, see ``pg19.py``), else bundled GSM8K in 128 windows of 2048 tokens. ``owl_clip`` "auto" is what
    the authors' code does with a block whose OWL sparsity comes out <= 0: 0.01 for Wanda (``prune_wanda_outlier``,
    as OWL's own code) and 0, nothing pruned, for magnitude (``prune_mag_outlier`` prunes ``int(numel x s)``
    weights only when that is positive). ``nm`` ("2:4", "4:8") forces N zeros in every M inputs and then
    ``sparsity`` must be N/M with uniform allocation. ``rounding="exact"`` makes every matrix lose
    ``round(numel x s_block)`` weights (the remainder of the per-row floor spread over rows);
    ``"floor"`` is the Wanda / SparseGPT reference rule, ``floor(in x s)`` per row (or per SparseGPT block).
    ``calibration_sampling``: "auto", "document" (windows inside one document, as wanda's C4 loader) or
    "packed". ``layerif_eps`` / ``alpha_eps`` default (None) to the reference scripts' value for the method
    (``PRUNERS[method].defaults``).

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

        declared = declarations()
        for name in ("method", "allocation"):
            declared[name][0].check(getattr(self, name), fail)
        method, allocation = PRUNERS[self.method], ALLOCATORS[self.allocation]
        for name, (param, *owners) in declared.items():  # a field only another method reads would be ignored
            chosen = {("method", self.method), ("allocation", self.allocation)}
            if param.exclusive and getattr(self, name) is not None and not chosen & set(owners):
                kind = owners[0][0]
                allowed = " or ".join(f"{kind}={owner!r}" for _, owner in owners)
                fail(f"{name}={getattr(self, name)!r} with {kind}={getattr(self, kind)!r}", allowed,
                     f"Drop {name}, or use {allowed}.")
        if self.shortgpt_layers is not None:
            declared["shortgpt_layers"][0].check(self.shortgpt_layers, fail)
        elif self.sparsity is None:
            fail(f"sparsity is missing for method={self.method!r}", "a float in [0, 1)" + (
                 ", or shortgpt_layers" if "shortgpt_layers" in {p.name for p in method.params} else ""),
                 "E.g. sparsity=0.2 for 20%.")
        if self.sparsity is not None and (isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float))
                                          or not 0 <= self.sparsity < 1):
            fail(f"sparsity={self.sparsity!r} is out of range", "a float in [0, 1)", "E.g. sparsity=0.2 for 20%.")
        for name, value in {**FALLBACK, **method.defaults}.items():  # None / "auto": the method's reference value
            if getattr(self, name) in (None, "auto"):
                object.__setattr__(self, name, value)
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
        for name, (param, *_) in declared.items():
            param.check(getattr(self, name), fail)
        if method.structured and self.allocation != "uniform":
            fail(f"allocation={self.allocation!r} with method={self.method!r}", "'uniform'",
                 "ShortGPT removes whole blocks; layer-wise allocation does not apply.")
        for entry in (method, ALLOCATORS[self.allocation]):
            if entry.check is not None:
                entry.check(self, fail)
        check_layerif_config(self, fail)
