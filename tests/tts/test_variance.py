"""Variance components and paired intervals against least squares, closed forms and simulated studies."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tests.tts._synthetic import additive_grid, records, true_components
from tts_prune.report.explorer import runs
from tts_prune.tts import variance


def _anova_by_least_squares(y):
    # Independent route: residual sums of squares of nested dummy-coded linear models.
    P, S = y.shape
    problem = np.repeat(np.eye(P), S, axis=0)
    seed = np.tile(np.eye(S), (P, 1))
    flat = y.reshape(-1)

    def rss(design):
        beta = np.linalg.lstsq(design, flat, rcond=None)[0]
        return float(((flat - design @ beta) ** 2).sum())

    ones = np.ones((P * S, 1))
    ms_p = (rss(ones) - rss(problem)) / (P - 1)
    ms_s = (rss(ones) - rss(seed)) / (S - 1)
    ms_e = rss(np.hstack([problem, seed[:, 1:]])) / ((P - 1) * (S - 1))
    return ms_p, ms_s, ms_e


def test_components_are_the_anova_moments():
    rng = np.random.default_rng(1)
    p = 0.5 + rng.uniform(-0.2, 0.2, 12)[:, None] + np.array([-0.3, -0.1, 0.1, 0.3])[None, :]  # a strong seed effect
    y = (rng.random(p.shape) < p).astype(float)
    ms_p, ms_s, ms_e = _anova_by_least_squares(y)
    ms_w = (ms_s * 3 + ms_e * 33) / 36  # within-problem sum of squares = seed + residual sums
    nested, crossed = variance.components(y), variance.components(y, crossed=True)
    assert nested.var_seed == pytest.approx(ms_w) and nested.var_problem == pytest.approx(max(0, (ms_p - ms_w) / 4))
    assert nested.se ** 2 == pytest.approx(ms_p / 48) and nested.df == 11
    assert crossed.var_seed == pytest.approx(ms_e)
    assert crossed.var_problem == pytest.approx(max(0, (ms_p - ms_e) / 4))
    assert nested.var_seed_shift == crossed.var_seed_shift == pytest.approx(max(0, (ms_s - ms_e) / 12))
    assert nested.seed_shift_p == pytest.approx(sps.f.sf(ms_s / ms_e, 3, 33)) and nested.seed_shift_p < 0.05
    assert ms_s > ms_e  # this grid shows a seed effect: the crossed interval keeps the seed term
    assert crossed.se ** 2 == pytest.approx((ms_p + ms_s - ms_e) / 48)
    assert nested.seed_sd == pytest.approx(np.std(y.mean(axis=0), ddof=1))
    flat = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0.0]])  # column means equal: MS_S = 0 < MS_E
    assert variance.components(flat, crossed=True).se ** 2 == pytest.approx(_anova_by_least_squares(flat)[0] / 12)


def test_one_seed_is_the_classic_interval_over_problems():
    y = (np.random.default_rng(2).random((25, 1)) < 0.6).astype(float)
    low, high = variance.components(y).interval()
    expected = sps.t.interval(0.95, 24, loc=y.mean(), scale=sps.sem(y[:, 0]))
    assert (low, high) == pytest.approx(expected)


@pytest.mark.parametrize("problems,seeds,mean,wp,ws,crossed", [
    (30, 3, 0.5, 0.4, 0.0, False), (40, 8, 0.3, 0.25, 0.0, False),     # independent seeds: the default model
    (30, 3, 0.5, 0.4, 0.15, True), (40, 8, 0.3, 0.25, 0.05, True)])    # seeds that shift every problem
def test_simulated_studies_recover_components_and_cover(problems, seeds, mean, wp, ws, crossed):
    rng = np.random.default_rng(problems * seeds)
    fits = [variance.components(additive_grid(rng, problems, seeds, mean, wp, ws)[3], crossed) for _ in range(400)]
    coverage = np.mean([f.interval()[0] <= mean <= f.interval()[1] for f in fits])
    assert 0.90 <= coverage <= 0.99
    vp, vs, ve = true_components(mean, wp, ws)
    assert np.mean([f.var_problem for f in fits]) == pytest.approx(vp, rel=0.1)
    assert np.mean([f.var_seed for f in fits]) == pytest.approx(ve + (0 if crossed else vs), rel=0.05)
    assert np.mean([f.var_seed_shift for f in fits]) == pytest.approx(vs, abs=0.003)  # clipped at 0: biased up a bit
    shares = pd.DataFrame([f.shares() for f in fits]).mean()
    assert shares["share_problem"] == pytest.approx(vp / (vp + vs + ve), abs=0.04)
    if not crossed:  # no seed effect: its F-test rejects at its level
        assert np.mean([f.seed_shift_p < 0.05 for f in fits]) < 0.09


def test_a_seed_shift_breaks_the_nested_interval_and_the_crossed_one_holds():
    rng = np.random.default_rng(9)
    grids = [additive_grid(rng, 40, 5, 0.5, 0.2, 0.2)[3] for _ in range(300)]
    cover = {c: np.mean([(lambda f: f.interval()[0] <= 0.5 <= f.interval()[1])(variance.components(g, c))
                         for g in grids]) for c in (False, True)}
    assert cover[False] < 0.85 and 0.90 <= cover[True] <= 0.99


def test_paired_interval_covers_a_known_difference_and_holds_its_level():
    rng = np.random.default_rng(7)
    hits, rejections_null = [], []
    for delta in (-0.1, 0.0):
        for _ in range(300):
            a, b, p, dense = additive_grid(rng, 30, 3, 0.55, 0.35, 0.1)
            # pruned: the same problems and seed shifts, a problem-specific change on top
            shift = delta + rng.uniform(-0.15, 0.15, 30)[:, None]
            pruned = (rng.random(p.shape) < np.clip(p + shift, 0, 1)).astype(float)
            fit = variance.components(pruned - dense)
            hits.append(fit.interval()[0] <= delta <= fit.interval()[1])
            if delta == 0.0:
                rejections_null.append(2 * sps.t.sf(abs(fit.mean / fit.se), fit.df) < 0.05)
    assert 0.90 <= np.mean(hits) <= 0.99
    assert np.mean(rejections_null) <= 0.08


def test_variance_components_frame_per_run_and_budget():
    rng = np.random.default_rng(3)
    grades = {(run, budget): additive_grid(rng, 10, 3, 0.5, 0.3, 0.1)[3]
              for run in ("dense", "wanda/owl/0.5") for budget in (8, 16)}
    df = runs(pd.concat([records(g, run=run, budget=budget) for (run, budget), g in grades.items()]))
    table = variance.variance_components(df)
    assert len(table) == 4 and set(table["run"]) == {"dense", "wanda/owl/0.5"}
    row = table[(table["run"] == "dense") & (table["budget"] == 16)].iloc[0]
    g = grades[("dense", 16)]
    assert row["avg_at_k"] == pytest.approx(g.mean()) and row["seed_sd"] == pytest.approx(g.mean(0).std(ddof=1))
    assert row["problems"] == 10 and row["seeds"] == 3
    paired = variance.paired_variance(df)
    assert list(paired["budget"]) == [8, 16]
    assert paired["diff"].tolist() == pytest.approx([grades[("wanda/owl/0.5", b)].mean() - grades[("dense", b)].mean()
                                                     for b in (8, 16)])
    assert (paired["mdd"] > 0).all()
    one = variance.paired_components(df[(df["run"] != "dense") & (df["budget"] == 8)],
                                     df[(df["run"] == "dense") & (df["budget"] == 8)])
    fit = variance.components(grades[("wanda/owl/0.5", 8)] - grades[("dense", 8)])
    assert one["p_value"] == pytest.approx(2 * sps.t.sf(abs(fit.mean / fit.se), fit.df))
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(fit.interval())


def test_incomplete_or_tiny_grids_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="complete"):
        variance.components(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="problems >= 2"):
        variance.components(np.ones((1, 3)))
