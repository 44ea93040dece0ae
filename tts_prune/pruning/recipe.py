"""``Recipe``: what a pruned model *is* (method, allocation, sparsity, calibration, seed, the method's and the
allocation's own parameters), one frozen record with a stable ``key``, a file-name ``slug``, a run ``label``
and ``is_dense``. The word "dense" (the unpruned baseline) is defined here and nowhere else.

``save_pruned`` writes it into ``pruning_recipe.json``; 04-tts-scaling's ``evaluated_model`` checks the
saved one against its own; the study grid's recipe axes (:data:`RECIPE_AXES`), the lab folder
``models/pruned/lab/<model>/<slug>``, the report's run labels and plot order all come from here.
``lab_config`` turns the notebooks' parameters into a ``PruneConfig`` (the one place where the lab's
conventions, 0 / "" meaning "unset" and OWL's lambda capped at the sparsity, are applied).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields

DENSE = "dense"  # the unpruned baseline: its recipe is method "dense", allocation "uniform", sparsity 0
# The grid axes that name a recipe (with the model): a 04-tts-scaling cell evaluates the 03-pruning cell
# of the same values. Calibration source and seed are axes only where a study varies them (study/grid.py).
RECIPE_AXES = ("model", "method", "allocation", "sparsity")


@dataclass(frozen=True)
class Recipe:
    """One pruning recipe; ``params`` are the method's and allocation's declared parameters, sorted by name.

    ``sparsity`` is None only for ShortGPT by block count (``shortgpt_layers``). The dense baseline is
    ``Recipe()`` (see :attr:`is_dense`).
    """

    method: str = DENSE
    allocation: str = "uniform"
    sparsity: float | None = 0.0
    shortgpt_layers: int | None = None
    calibration: str | None = None
    seed: int = 0  # of the calibration windows
    nsamples: int | None = None
    seqlen: int | None = None
    params: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        from .allocation import ALLOCATORS
        from .methods import PRUNERS

        def fail(what, allowed, fix):
            raise ValueError(f"Recipe: {what}; allowed: {allowed}. {fix}")

        if self.method != DENSE and self.method not in PRUNERS:
            fail(f"method={self.method!r} is unknown", [DENSE, *sorted(PRUNERS)], "Pick one of those names.")
        if self.allocation not in ALLOCATORS:
            fail(f"allocation={self.allocation!r} is unknown", sorted(ALLOCATORS), "Pick one of those names.")
        if self.is_dense and (self.allocation, self.sparsity or 0.0, self.shortgpt_layers) != ("uniform", 0.0, None):
            fail(f"method='dense' with allocation={self.allocation!r}, sparsity={self.sparsity}", "allocation "
                 "'uniform', sparsity 0 and no shortgpt_layers", "The dense model is not pruned: drop them.")
        if self.sparsity is None and not self.shortgpt_layers:
            fail("sparsity is None without shortgpt_layers", "a sparsity in [0, 1)", "E.g. sparsity=0.2.")
        object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in dict(self.params).items())))

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config) -> Recipe:
        """The recipe of a (validated) ``PruneConfig``: its core fields and every parameter its method and
        allocation declare."""
        from .allocation import ALLOCATORS
        from .methods import PRUNERS

        declared = PRUNERS[config.method].params + ALLOCATORS[config.allocation].params
        return cls(config.method, config.allocation, config.sparsity, config.shortgpt_layers, config.calibration,
                   config.seed, config.nsamples, config.seqlen, tuple((p.name, getattr(config, p.name)) for p in declared))

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(map(tuple, v)) if k == "params" else v) for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return {**asdict(self), "params": [list(p) for p in self.params]}

    # ------------------------------------------------------------------------------------ identity
    @property
    def is_dense(self) -> bool:
        return self.method == DENSE

    @property
    def key(self) -> str:
        """A stable 16-hex hash of every field (a JSON canonical form: the same on every machine and run)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def slug(self) -> str:
        """A file-name form: ``dense``, ``wanda-owl-0.2``, ``shortgpt-uniform-2L`` (the lab folder's name)."""
        if self.is_dense:
            return DENSE
        size = f"{self.shortgpt_layers}L" if self.shortgpt_layers else f"{self.sparsity}"
        return re.sub(r"[^A-Za-z0-9.+-]+", "-", f"{self.method}-{self.allocation}-{size}")

    @property
    def label(self) -> str:
        """The report's run label: ``dense``, ``wanda/owl/0.2``, ``shortgpt/-2L``."""
        return run_label(self.method, self.allocation, self.sparsity, layers=self.shortgpt_layers)

    def differences(self, other: Recipe, ignore=()) -> dict:
        """``{field: (ours, theirs)}`` for every field (and parameter) that differs, ``ignore``'s names left out."""
        ours, theirs = self.to_dict(), other.to_dict()
        ours.update(dict(self.params)), theirs.update(dict(other.params))
        return {k: (ours.get(k), theirs.get(k)) for k in dict.fromkeys([*ours, *theirs])
                if k != "params" and k not in ignore and ours.get(k) != theirs.get(k)}


def run_label(method: str, allocation: str, sparsity, removed: float | None = None, layers: int | None = None) -> str:
    """A run's label in tables and plots: ``dense``; ``method/allocation/sparsity``, with what ShortGPT really
    removed when known (``removed``: share of decoder parameters); ``method/-NL`` for ShortGPT by block count."""
    if method == DENSE:
        return DENSE
    known = removed is not None and removed == removed  # NaN: not recorded
    if layers:
        return f"{method}/-{layers}L" + (f" ({removed:.1%} of decoder)" if known else "")
    label = f"{method}/{allocation}/{float(sparsity):g}"
    return f"{label} (removed {removed:.1%})" if known else label


def plot_order(label: str) -> tuple:
    """Sort key of run labels: the dense baseline first, then alphabetical."""
    return (str(label) != DENSE, str(label))


def lab_config(method: str, sparsity: float, allocation: str = "uniform", shortgpt_layers: int = 0,
               layerif_scores: str = "", layerif_samples: int = 16, **settings):
    """The ``PruneConfig`` the notebooks' parameters mean (02, 03 and 04 build theirs here, so they agree).

    Notebook parameters are literals, so 0 / "" stand for "unset": ``shortgpt_layers`` 0 prunes by
    ``sparsity``, ``layerif_scores`` "" computes LayerIF's scores (and is dropped for other allocations), other
    empty or zero ``settings`` are left to ``PruneConfig``'s defaults. OWL's ``owl_lambda`` is capped at the
    sparsity, as in the OWL paper (arXiv 2310.05175, lambda <= s keeps every block's sparsity >= 0) and the
    kit's notebooks have always done; ``layerif_samples`` is capped at ``nsamples`` (it draws from them).
    """
    from .config import PruneConfig

    settings = {k: v for k, v in settings.items() if v not in ("", None) and not (k.endswith("_eps") and v == 0)}
    if "owl_lambda" in settings:
        settings["owl_lambda"] = min(settings["owl_lambda"], sparsity)
    if "nsamples" in settings:
        layerif_samples = min(layerif_samples, settings["nsamples"])
    return PruneConfig(method=method, sparsity=None if shortgpt_layers else sparsity, allocation=allocation,
                       shortgpt_layers=shortgpt_layers or None, layerif_samples=layerif_samples,
                       layerif_scores=(layerif_scores or None) if allocation == "layerif" else None, **settings)


def record_recipe(recipe: Recipe, saved: dict | None = None) -> dict:
    """The ``recipe`` every evaluation record stores (part of its key): for the dense model its method,
    allocation and sparsity; for a pruned one also what ``pruning_recipe.json`` (``saved``) says was achieved,
    its calibration, and ``shortgpt_layers`` for ShortGPT by block count (absent otherwise, so the records of
    every other recipe keep their keys)."""
    base = {"method": recipe.method, "allocation": recipe.allocation, "sparsity": recipe.sparsity}
    if recipe.is_dense:
        return base
    saved = saved or {}
    by_count = {"shortgpt_layers": recipe.shortgpt_layers} if recipe.shortgpt_layers else {}
    return {**base, "achieved_sparsity": saved.get("global_sparsity"), "removed_layers": saved.get("removed_layers"),
            "removed_param_fraction": saved.get("removed_param_fraction"), "calibration": recipe.calibration,
            "calibration_seed": recipe.seed, "nsamples": recipe.nsamples, "seqlen": recipe.seqlen, **by_count}


def lab_recipe(method: str, sparsity: float = 0.0, *args, **parameters) -> Recipe:
    """The recipe a notebook's parameters name: the dense one for ``method="dense"``, else that of
    ``lab_config(method, sparsity, *args, **parameters)`` (what 03-pruning prunes with the same parameters)."""
    return Recipe() if method == DENSE else Recipe.from_config(lab_config(method, sparsity, *args, **parameters))


def recipe_parameters() -> set[str]:
    """The notebook parameter names that define a recipe: ``lab_config``'s arguments, the calibration fields
    and every parameter a method or allocation declares (``calibration_seed`` is 04's name for ``seed``)."""
    import inspect

    from .config import declarations

    declared = {name for name, (_, *owners) in declarations().items() if owners[0][0] != "core"}
    return (set(inspect.signature(lab_config).parameters) - {"settings"}) | declared | {
        "calibration", "nsamples", "seqlen", "seed", "calibration_seed"}


def notebook_recipe(parameters: dict) -> Recipe:
    """``lab_recipe`` of a notebook's parameter dict (e.g. papermill's defaults): its recipe parameters
    (:func:`recipe_parameters`), ``calibration_seed`` (04-tts-scaling's name) standing for ``seed``."""
    chosen = {k: v for k, v in parameters.items() if k in recipe_parameters()}
    if "calibration_seed" in chosen:
        chosen["seed"] = chosen.pop("calibration_seed")
    return lab_recipe(**chosen)
