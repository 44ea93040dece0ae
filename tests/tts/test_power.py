"""Power planning and the sequential seed rule, checked by simulating the studies they plan."""
import argparse

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tests.tts._synthetic import additive_grid, records
import tts_prune
from tts_prune import cli
from tts_prune.report import reviewer
from tts_prune.tts import power, sequential, variance
from tts_prune.tts.results import ResultStore


def _paired(rng, problems, seeds, delta):
    # dense and pruned share problem difficulty and seed shifts; pruning adds its own per-problem change
    a, b, p, dense = additive_grid(rng, problems, seeds, 0.5, 0.35, 0.1)
    shift = delta + rng.uniform(-0.15, 0.15, problems)[:, None]
    pruned = (rng.random(p.shape) < np.clip(p + shift, 0, 1)).astype(float)
    return pruned - dense


def _rejects(diff):
    fit = variance.components(diff)
    return 2 * sps.t.sf(abs(fit.mean / fit.se), fit.df) < 0.05


def test_planned_problems_reach_the_planned_power():
    rng = np.random.default_rng(11)
    pilot = variance.components(_paired(rng, 2000, 6, 0.0))  # a large pilot: components close to the truth
    needed = power.problems_needed(pilot.var_problem, pilot.var_seed, d=0.15, seeds=3)
    assert 20 <= needed <= 200
    hit = np.mean([_rejects(_paired(rng, int(needed), 3, -0.15)) for _ in range(400)])
    assert 0.72 <= hit <= 0.88
    # more seeds never need more problems; a 2x smaller effect needs about 4x the problems
    by_seeds = [power.problems_needed(pilot.var_problem, pilot.var_seed, 0.15, s) for s in (1, 3, 10)]
    assert by_seeds == sorted(by_seeds, reverse=True)
    half = power.problems_needed(pilot.var_problem, pilot.var_seed, 0.075, 3)
    assert half / needed == pytest.approx(4, rel=0.1)
    # a seed main effect alone too big for the budget: no number of problems suffices
    assert power.problems_needed(0.01, 0.2, d=0.05, seeds=2, var_seed_shift=0.05) == float("inf")


def test_minimum_detectable_difference_is_detected_with_the_stated_power():
    rng = np.random.default_rng(12)
    fits = [variance.components(_paired(rng, 40, 3, 0.0)) for _ in range(200)]
    mdd = float(np.mean([power.minimum_detectable_difference(f.se, f.df) for f in fits]))
    assert mdd == pytest.approx((sps.t.ppf(0.975, fits[0].df) + sps.t.ppf(0.8, fits[0].df)) * fits[0].se, rel=0.5)
    hit = np.mean([_rejects(_paired(rng, 40, 3, -mdd)) for _ in range(400)])
    assert 0.7 <= hit <= 0.92


def _store_frame(rng, seeds=3, problems=25):
    parts = []
    for budget in (8, 16):
        a, b, p, dense = additive_grid(rng, problems, seeds, 0.5, 0.3, 0.05)
        parts.append(records(dense, "dense", budget))
        for run, drop in (("wanda/owl/0.5", 0.1), ("magnitude/uniform/0.5", 0.2)):
            pruned = (rng.random(p.shape) < np.clip(p - drop, 0, 1)).astype(float)
            parts.append(records(pruned, run, budget))
    return pd.concat(parts, ignore_index=True)


def test_power_table_and_the_cli_on_a_synthetic_store(tmp_path, capsys):
    df = _store_frame(np.random.default_rng(5))
    ResultStore(tmp_path).append(df.to_dict(orient="records"))
    table = tts_prune.power_table(df, d=(0.05, 0.10), seeds=(1, 3))  # the store's frame, runs labelled
    from tts_prune.report.explorer import runs

    pairs = variance.paired_variance(runs(df))  # 2 runs x 2 budgets, computed independently of the table
    assert len(pairs) == 4 and (table["comparisons"] == 4).all() and table["seed_split"].all()
    comps = [pairs[k].mean() for k in ("var_problem", "var_seed")]
    for row in table.itertuples():
        assert row.problems_needed == power.problems_needed(*comps, d=row.d, seeds=row.seeds)
    assert cli.COMMANDS["power"][0] == "tts_prune.report.reviewer"  # `tts-prune power` dispatches to reviewer.run
    parser = argparse.ArgumentParser()
    reviewer.add_arguments(parser)
    assert reviewer.run(parser.parse_args(["--results", str(tmp_path), "--seeds", "1", "3"])) == 0
    out = capsys.readouterr().out
    assert "toy · toy-reasoning" in out and "4 comparisons" in out
    for row in table.itertuples():
        assert f"d={row.d:g}: {int(row.problems_needed):>6}" in out
    with pytest.raises(ValueError, match="explorer.runs"):
        power.power_table(df)  # the tts function wants labelled runs; tts_prune.power_table labels them


def test_a_one_seed_pilot_puts_all_variance_on_problems():
    df = _store_frame(np.random.default_rng(6), seeds=1)
    table = tts_prune.power_table(df, seeds=(1, 5))
    assert not table["seed_split"].any()
    one, five = (table[(table["d"] == 0.1) & (table["seeds"] == s)]["problems_needed"].item() for s in (1, 5))
    assert one == five  # conservative: more seeds are not assumed to help


# ------------------------------------------------------------------------------ the sequential rule
def test_sequential_rule_keeps_coverage_at_the_stop():
    rng = np.random.default_rng(21)
    covered, stops = [], []
    for _ in range(300):
        full = additive_grid(rng, 30, 10, 0.5, 0.3, 0.0)[3]
        seen = 2
        while True:
            decision = sequential.decide({8: full[:, :seen]}, target_ci_width=0.28, max_seeds=10, start_seeds=2)
            if decision["stop"]:
                break
            seen += decision["add"]
        row = decision["table"].iloc[0]
        covered.append(row["ci_low"] <= 0.5 <= row["ci_high"])
        stops.append(seen)
    assert len(set(stops)) > 1  # the rule does stop at different seed counts
    assert 0.95 <= np.mean(covered) <= 0.999  # Bonferroni over looks: at least the nominal 95%
    assert decision["level"] == pytest.approx(1 - 0.05 / 9)
    frame = records(full)  # the records route gives the same decision and names the seeds to add
    first = sequential.more_seeds(frame[frame["seed"] < 2], 0.28, 10)
    assert first["add"] == sequential.decide({8: full[:, :2]}, 0.28, 10, 2)["add"]
    assert first["next_seeds"] == list(range(2, 2 + first["add"]))


def test_sequential_rule_stops_when_seeds_cannot_help():
    rng = np.random.default_rng(3)
    greedy = np.repeat((rng.random((20, 1)) < 0.5).astype(float), 3, axis=1)  # every seed grades alike
    assert "do not vary" in sequential.more_seeds(records(greedy), 0.2, 8)["reason"]
    noisy = additive_grid(rng, 20, 3, 0.5, 0.4, 0.0)[3]
    unreachable = sequential.more_seeds(records(noisy), 0.05, 8)
    assert unreachable["stop"] and "more problems" in unreachable["reason"]
    with pytest.raises(ValueError, match="target_ci_width"):
        sequential.more_seeds(records(noisy), 0.0, 8)


def test_seeds_until_precise_evaluates_only_the_seeds_it_needs():
    full = additive_grid(np.random.default_rng(4), 30, 12, 0.5, 0.3, 0.05)[3]
    asked = []

    def evaluate_seeds(seeds):  # a fake tts_prune.evaluate: the records of the seeds asked for
        asked.append(list(seeds))
        frame = records(full)
        return frame[frame["seed"].isin(seeds)]

    got, log = sequential.seeds_until_precise(evaluate_seeds, [0, 1], target_ci_width=0.3, max_seeds=12)
    used = sorted(got["seed"].unique())
    assert used == list(range(len(used))) and asked[0] == [0, 1] and log["stop"].tolist()[-1]
    assert log["width"].iloc[-1] <= 0.3 or len(used) == 12
