"""How pruning methods and allocations describe themselves: their parameters, data needs and structure.

A :class:`Method` (``methods.py``, registry :data:`~.methods.PRUNERS`) and an :class:`Allocation`
(``allocation.py``, registry :data:`~.allocation.ALLOCATORS`) each declare the ``PruneConfig`` fields they
read (:class:`Param`: help text, allowed values, whether the held-out selection may search it), whether
they need calibration data, and what else the driver must know. ``PruneConfig``'s validation, the
``prune`` CLI, the notebooks' checks, the study grid and the selection search are all derived from these
declarations, so adding a method is one module (its kernel) and one registry line.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Param:
    """One ``PruneConfig`` field a method or allocation reads; its type and default are the field's own.

    ``choices``: the allowed values (a tuple, or a function returning them, for registries filled later);
    ``rule``: a predicate on a set value (None is the "use the method's reference value" default and passes),
    with ``allowed`` and ``fix`` for the error; ``searchable``: the held-out selection (``study/selection.py``)
    may try several values of it; ``exclusive``: setting it with a method or allocation that does not read it
    is an error (it would be silently ignored).
    """

    name: str
    help: str
    choices: tuple | Callable[[], Sequence] | None = None
    rule: Callable[[Any], bool] | None = None
    allowed: str = ""
    fix: str = ""
    searchable: bool = False
    exclusive: bool = False  # set (not None) only with a method / allocation that declares it

    def allowed_values(self) -> list | None:
        if self.choices is None:
            return None
        return list(self.choices() if callable(self.choices) else self.choices)

    def check(self, value, fail) -> None:
        """Raise through ``fail(what, allowed, fix)`` when ``value`` is not allowed."""
        choices = self.allowed_values()
        if choices is not None and value not in choices:
            fail(f"{self.name}={value!r} is unknown", choices, self.fix or "Pick one of those names.")
        if self.rule is not None and value is not None and not self.rule(value):
            fail(f"{self.name}={value!r}", self.allowed, self.fix)


def positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def in_unit_interval(value) -> bool:
    """[0, 1): sparsities, epsilons, dampening."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1


@dataclass(frozen=True)
class Method:
    """A pruning method: ``kernel(weight (out, in), stats, sparsity, config) -> (new weight or None, mask)``.

    ``needs_data``: it reads calibration statistics; ``stats``: which :class:`~.calibration.LinearStats` it
    needs (``"sq_norm"`` always, ``"hessian"`` for SparseGPT's 2 X X^T); ``structured``: it removes whole
    blocks (ShortGPT: no kernel, and layer-wise allocation does not apply); ``params``: the fields it reads;
    ``defaults``: its reference values for fields left at None ("auto" for ``owl_clip``), e.g. its own
    calibration data or the reference scripts' epsilons; ``check(config, fail)``: cross-field rules.
    """

    kernel: Callable | None
    needs_data: bool
    stats: tuple[str, ...] = ("sq_norm",)
    structured: bool = False
    params: tuple[Param, ...] = ()
    defaults: dict = field(default_factory=dict)
    check: Callable | None = None
    doc: str = ""

    @property
    def hessian(self) -> bool:
        return "hessian" in self.stats


@dataclass(frozen=True)
class Allocation:
    """A layer-wise sparsity allocation: ``fn(model, ids, config, show_progress, tokenizer) -> ratios``.

    ``needs_data``: it reads calibration windows (``data_unless``: a config field that, when set, makes it
    data-free, e.g. LayerIF's pickled scores); ``params``: the fields it reads (the searchable ones are what
    the held-out selection tries); ``check(config, fail)``: cross-field rules, run only when it is chosen.
    """

    fn: Callable
    needs_data: bool = False
    params: tuple[Param, ...] = ()
    check: Callable | None = None
    data_unless: str | None = None
    in_grid: bool = True  # False: not a study axis value (``manual`` needs an explicit per-block list)

    def __call__(self, model, ids, config, show_progress=True, tokenizer=None):
        return self.fn(model, ids, config, show_progress, tokenizer)

    def reads_data(self, config) -> bool:
        return self.needs_data and not (self.data_unless and getattr(config, self.data_unless))

    @property
    def searchable(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.searchable)
