"""The reviewer's statistics (issue 22) on the records frame the store returns, and ``tts-prune power``.

``tts_prune.tts`` computes on records that carry run labels; the labels (method / allocation / sparsity
[/ calibration]) are the study's (``explorer.runs``), so the public entry points live here, where both are
known: ``tts_prune.variance_components``, ``power_table``, ``scaling_slopes`` and ``failure_breakdown`` take
``tts_prune.load_results(...)`` as it is (or an already labelled frame) and label the runs when needed.
"""
from __future__ import annotations

import functools
import math

import pandas as pd

from ..tts import failures, power, slopes, variance
from .explorer import runs


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with run labels: as given when it has ``run`` and ``method`` columns, else ``explorer.runs(df)``."""
    return df if {"run", "method"} <= set(df.columns) else runs(df)


def _on_store_frame(function):
    @functools.wraps(function)
    def wrapper(df: pd.DataFrame, *args, **kwargs):
        return function(labelled(df), *args, **kwargs)
    return wrapper


variance_components = _on_store_frame(variance.variance_components)
power_table = _on_store_frame(power.power_table)
scaling_slopes = _on_store_frame(slopes.scaling_slopes)
failure_breakdown = _on_store_frame(failures.failure_breakdown)


# ------------------------------------------------------------------------------ tts-prune power
def add_arguments(parser) -> None:
    parser.add_argument("--results", default=None, help="results store (default: results/lab/records)")
    parser.add_argument("--d", type=float, nargs="+", default=list(power.D_VALUES), help="differences to detect")
    parser.add_argument("--power", type=float, default=0.8, help="power of the paired test (default 0.8)")
    parser.add_argument("--alpha", type=float, default=0.05, help="two-sided level per test (default 0.05)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(power.SEED_COUNTS), help="seed counts to plan for")
    parser.add_argument("--crossed", action="store_true", help="plan for a seed main effect (a seed that shifts "
                        "every problem), not only independent seeds")


def run(args) -> int:
    from .. import paths
    from ..tts.results import load_results

    root = args.results or paths.RESULTS_DIR / "lab" / "records"
    records = load_results(root)
    if records.empty:
        raise ValueError(f"no records under {root}; run a study (or 04-tts-scaling) first, or pass --results DIR")
    table = power_table(records, d=args.d, power=args.power, alpha=args.alpha, seeds=args.seeds, crossed=args.crossed)
    for (model, benchmark), part in table.groupby(["model", "benchmark"], sort=True):
        first = part.iloc[0]
        print(f"{model} · {benchmark}: pilot {first['pilot_problems']} problems x {first['pilot_seeds']} seeds, "
              f"{first['comparisons']} comparisons ({first['source']}); variance of a paired difference: between "
              f"problems {first['var_problem']:.4f}, between seeds {first['var_seed']:.4f} (seed main effect "
              f"{first['var_seed_shift']:.4f}{', planned for' if args.crossed else ', not planned for: --crossed'})")
        if not first["seed_split"]:
            print("  one pilot seed: seed variance cannot be split from problem variance; all of it is put on "
                  "problems (conservative: more seeds are assumed not to help)")
        wide = part.pivot(index="seeds", columns="d", values="problems_needed")
        print(f"  problems needed at {args.power:.0%} power, two-sided alpha {args.alpha:g} (rows: seeds; columns: d)")
        for seeds, row in wide.iterrows():
            cells = "  ".join(f"d={d:g}: {'unreachable' if math.isinf(v) else int(v):>6}" for d, v in row.items())
            print(f"  {seeds:>3} seeds  {cells}")
    return 0
