"""Held-out selection of allocation hyper-parameters: chosen on validation problems, never on the test ones.

The referee of arXiv 2604.25098 noted that the allocation hyper-parameters (OWL's lambda and M, LayerIF's
epsilon) may have been tuned on the test benchmarks. Here a study declares a small search, e.g.

    params:
      selection: {owl_lambda: [0.04, 0.08], owl_m: [3, 5, 7], layerif_eps: [0.1, 0.3], alpha_eps: [0.1, 0.3]}

(``layerif_eps``: ``layerif-block``; the paper's ``layerif`` has no searched hyper-parameter)

and for each pruned cell, every combination of the values that its allocation reads (:func:`searchable`)
prunes a fresh copy of the dense model and is scored by greedy accuracy at one budget on the benchmark's
``validation`` split (``tts_prune.tts.splits``: disjoint from the test problems by construction; for AIME24,
AMC23, MATH500 and GPQA it is GSM8K train). The best candidate (ties: the first in declaration order) prunes
the model that 04-tts-scaling then evaluates on the test problems; the notebook prints the whole search.
OWL (arXiv 2310.05175) and LayerIF (arXiv 2505.23811) themselves report fixed values (M=5, lambda=0.08;
eps=0.3 in LayerIF's code); this makes the choice explicit and held-out instead.
"""
from __future__ import annotations

import copy
import dataclasses
from itertools import product
from typing import Callable

import pandas as pd

def searchable(allocation: str, method: str | None = None) -> tuple[str, ...]:
    """The PruneConfig fields the held-out search may try for this allocation (and method): those their
    declarations mark ``searchable`` (``pruning/allocation.py``, ``pruning/methods.py``), i.e. the fields they
    really read. The paper's ``layerif`` has none (its e1 / e2 are the authors' constants)."""
    from ..pruning.allocation import ALLOCATORS
    from ..pruning.methods import PRUNERS

    found = ALLOCATORS[allocation].searchable if allocation in ALLOCATORS else ()
    if method in PRUNERS:
        found += tuple(p.name for p in PRUNERS[method].params if p.searchable)
    return tuple(dict.fromkeys(found))


def candidates(allocation: str, search: dict, method: str | None = None) -> list[dict]:
    """Every combination of the ``search`` values that ``allocation`` (and ``method``) read, in declaration
    order ([] if none)."""
    from ..pruning.allocation import ALLOCATORS
    from ..pruning.methods import PRUNERS

    allowed = {f for a in ALLOCATORS for f in searchable(a)} | {f for m in PRUNERS for f in searchable("uniform", m)}
    unknown = sorted(set(search) - allowed)
    if unknown:
        raise ValueError(f"selection keys {unknown} are not searchable hyper-parameters; allowed: {sorted(allowed)}")
    keys = [k for k in searchable(allocation, method) if k in search]
    for key in keys:
        if not isinstance(search[key], (list, tuple)) or not search[key]:
            raise ValueError(f"selection[{key!r}]={search[key]!r} must be a non-empty list of values to try")
    return [dict(zip(keys, values)) for values in product(*(search[k] for k in keys))] if keys else []


def validation_scorer(tokenizer, benchmark: str, budget: int, limit: int = 32, store=None, model_name: str = "",
                      batch_size: int = 16, backend: str = "transformers", show_progress: bool = False,
                      **evaluate_options) -> Callable:
    """A scorer ``(pruned model, candidate) -> accuracy`` on ``<benchmark>@validation`` at ``budget`` (greedy);
    ``evaluate_options`` go to ``tts_prune.evaluate`` (the study's thinking_format, answer_tokens)."""
    from ..tts.evaluation import evaluate

    base = benchmark.partition("@")[0]

    def score(model, candidate: dict) -> float:
        frame = evaluate((model, tokenizer), f"{base}@validation", [int(budget)], limit=limit, temperature=0.0,
                         backend=backend, batch_size=batch_size, out=store, model_name=model_name,
                         recipe={"purpose": "selection", **candidate}, show_progress=show_progress,
                         **evaluate_options)
        return float(frame["correct"].astype(float).mean())
    return score


def select(model, tokenizer, config, search: dict, calibration, score: Callable, show_progress: bool = False):
    """(chosen values, table of every candidate): prune a copy of the dense ``model`` per candidate, score it.

    ``config`` is the PruneConfig to tune; ``calibration`` its token ids. Candidates that ``PruneConfig``
    refuses (e.g. owl_lambda above the sparsity) are listed with their error and skipped.
    """
    from ..pruning.driver import prune

    rows = []
    for candidate in candidates(config.allocation, search, config.method):
        try:
            trial = dataclasses.replace(config, **candidate)
        except ValueError as error:
            rows.append({**candidate, "accuracy": float("nan"), "valid": False, "error": str(error)})
            continue
        pruned = copy.deepcopy(model)
        prune(pruned, tokenizer, trial, calibration, show_progress=show_progress)
        rows.append({**candidate, "accuracy": score(pruned, candidate), "valid": True, "error": ""})
        del pruned
    table = pd.DataFrame(rows)
    if table.empty or not table["valid"].any():
        return {}, table
    best = table[table["valid"]]["accuracy"].idxmax()  # first maximum: ties go to the earlier candidate
    chosen = {k: table.loc[best, k] for k in candidates(config.allocation, search, config.method)[0]}
    table["chosen"] = table.index == best
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in chosen.items()}, table
