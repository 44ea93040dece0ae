"""Held-out across benchmarks: choose allocation hyper-parameters on some benchmarks, pay for it on the others.

``study.selection`` tunes on a validation split of the same task. The referee's question of arXiv 2604.25098's
allocation results is harder: would the allocation (OWL vs LayerIF vs uniform, and their lambda / M / epsilon)
chosen on one set of benchmarks still be the right one on another? ``cross_benchmark`` answers it from the
records: for each held-out benchmark, the option with the best mean accuracy at the largest budget over the
OTHER benchmarks (or over ``tune_on``) is chosen, and the table reports its accuracy on the held-out benchmark
beside the best option there (the oracle, chosen on the test set itself) and the cost of the honest choice.
Options are the distinct values of the ``choose`` columns (``allocation`` by default; add recipe fields such as
``owl_lambda`` or ``sparsity`` as columns to search them too) within each ``by`` group (model x method x sparsity).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..pruning.recipe import DENSE  # the unpruned baseline, named once (pruning/recipe.py)


def cross_benchmark(df: pd.DataFrame, choose: Sequence[str] = ("allocation",), by=("model", "method", "sparsity"),
                    tune_on: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (``by`` group, held-out benchmark): ``chosen`` option (picked on the tuning benchmarks),
    ``chosen_acc`` on the held-out benchmark, ``oracle`` option and ``oracle_acc`` there, ``cost`` = oracle_acc -
    chosen_acc (0 when the honest choice is also the best), and ``tuned_on``. Ties go to the first option in
    sorted order. ``tune_on``: fixed tuning benchmarks (others held out); default: leave one benchmark out."""
    from .explorer import at_largest_budget

    needed = list(choose) + [c for c in by if c not in choose] + ["benchmark", "correct", "method"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"cross_benchmark needs columns {missing}; pass explorer.runs(load_results(...)) and add "
                         "the hyper-parameter columns you search")
    by = [c for c in by if c not in choose]  # choosing the sparsity too: it is an option, not a group
    pruned = at_largest_budget(df)
    pruned = pruned[pruned["method"] != DENSE]
    benchmarks = sorted(pruned["benchmark"].unique())
    unknown = sorted(set(tune_on or ()) - set(benchmarks))
    if unknown:
        raise ValueError(f"tune_on benchmarks {unknown} have no pruned records; the records have {benchmarks}")
    rows = []
    for key, group in pruned.groupby(list(by), sort=True):
        # mean over problems (and seeds) per option and benchmark: (options, benchmarks)
        acc = group.groupby(list(choose) + ["benchmark"])["correct"].mean().unstack("benchmark")
        if acc.shape[0] < 2 or acc.shape[1] < 2:
            continue  # one option or one benchmark: nothing to choose, or nowhere to hold out
        held_out = [b for b in acc.columns if b not in (tune_on or ())] if tune_on else list(acc.columns)
        for benchmark in held_out:
            tuning = list(tune_on) if tune_on else [b for b in acc.columns if b != benchmark]
            complete = acc.dropna(subset=tuning + [benchmark])
            if len(complete) < 2:
                continue
            chosen = complete[tuning].mean(axis=1).idxmax()
            oracle = complete[benchmark].idxmax()
            rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "held_out": benchmark,
                         "tuned_on": ", ".join(tuning), "options": len(complete), "chosen": chosen,
                         "chosen_acc": float(complete.loc[chosen, benchmark]), "oracle": oracle,
                         "oracle_acc": float(complete.loc[oracle, benchmark]),
                         "cost": float(complete.loc[oracle, benchmark] - complete.loc[chosen, benchmark])})
    return pd.DataFrame(rows)
