"""05-report's reviewer sections on a synthetic store with known effects, rendered; and the index page."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from tts_prune.tts.results import ResultStore

BUDGETS = [8, 16, 32, 64, 128, 256]
RUNS = {  # run -> (recipe, logit intercept, slope per doubling): wanda keeps the slope, magnitude halves it
    "dense": ({}, 0.0, 1.2),
    "wanda": ({"method": "wanda", "allocation": "owl", "sparsity": 0.5}, -0.2, 1.2),
    "magnitude": ({"method": "magnitude", "allocation": "uniform", "sparsity": 0.5}, -0.8, 0.4),
}


def synthetic_store(root, problems=40, seeds=3, rng_seed=0):
    """Toy-reasoning records: a scratchpad thinking that holds the gold sum when the run 'got there'."""
    rng = np.random.default_rng(rng_seed)
    x = np.log2(BUDGETS) - np.log2(BUDGETS).mean()
    difficulty = rng.normal(0, 0.8, problems)
    records = []
    for name, (recipe, a, b) in RUNS.items():
        for p in range(problems):
            gold = int(rng.integers(10, 99))
            for s in range(seeds):
                for j, budget in enumerate(BUDGETS):
                    correct = rng.random() < 0.9 * expit(a + b * x[j] - difficulty[p])
                    stated = correct or rng.random() < 0.15  # the thinking reached the sum, the answer did not say it
                    records.append({
                        "model": "toy-reasoner", "benchmark": "toy-reasoning", "recipe": recipe, "problem_id": f"q{p}",
                        "seed": s, "budget": budget, "correct": bool(correct), "gold": str(gold),
                        "no_answer": bool(not correct and rng.random() < 0.3), "capped": bool(rng.random() < 0.5),
                        "answer_capped": False, "prediction": str(gold if correct else gold + 1),
                        "thinking": f"A+1=1\nB+{gold - 1}={gold if stated else gold - 1}", "answer": "",
                        "thinking_tokens": int(min(budget, 20 + p)), "answer_tokens": 3, "backend": "transformers",
                        "model_hash": f"hash-{name}", "format": "toy",
                        "grading": {"protocol": "kit", "grade_thinking": False}})
    ResultStore(root).append(records)
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests._helpers_study import ROOT
    from tts_prune.study import render
    from tts_prune.study.execute import execute_notebook

    out = tmp_path_factory.mktemp("report-stats")
    synthetic_store(out / "records")
    target = out / "reports" / "synthetic" / "05-report.ipynb"
    target.parent.mkdir(parents=True)
    figures = out / "figures"
    execute_notebook(ROOT / "notebooks" / "05-report.ipynb", target, cwd=ROOT / "notebooks", progress_bar=False,
                     parameters={"results_dir": str(out / "records"), "artifacts_root": str(out / "artifacts"),
                                 "figures_dir": str(figures), "show_progress": False})
    html = render.render_html(target, target.with_suffix(".html"))
    manifest = {"study": "synthetic", "description": "three runs", "cells": [
        {"notebook": "05-report", "axes": {}, "ipynb": "synthetic/05-report.ipynb", "html": "synthetic/05-report.html",
         "done": True, "figures_dir": str(figures)}]}
    (out / "reports" / "synthetic" / "manifest.json").write_text(json.dumps(manifest))
    return {"out": out, "figures": figures, "html": html, "index": render.write_index(out / "reports")}


def test_claims_are_written_from_the_data(report):
    claims = pd.read_csv(report["figures"] / "claims.csv")
    slope = claims[claims["quantity"].str.startswith("slope")].set_index("claim")
    magnitude = slope[slope.index.str.contains("magnitude")].iloc[0]
    assert magnitude["verdict"] == "supported" and magnitude["estimate"] < -0.3  # the halved slope is found
    wanda = slope[slope.index.str.contains("wanda")].iloc[0]
    assert wanda["verdict"] != "supported"  # same slope: no slope claim
    assert claims["mdd"].notna().all() and set(claims["verdict"]) <= {"supported", "no difference beyond ±0.05",
                                                                      "no difference beyond ±0.25", "cannot tell"}


def test_report_sections_and_figures_exist(report):
    figures = report["figures"]
    for name in ("headline.png", "slopes__toy-reasoner__toy-reasoning.png", "failures__toy-reasoner__toy-reasoning.png",
                 "variance_components.csv", "paired_variance.csv", "scaling_slopes.csv", "failures.csv",
                 "failure_differences.csv", "power.csv"):
        assert (figures / name).exists(), name
    failures = pd.read_csv(figures / "failures.csv")
    assert (failures["right in thinking"] > 0).any()
    page = report["html"].read_text()
    assert "no significant difference (MDD" in page  # section 3 never says "no difference" without its MDD
    assert page.index("0 · Claims") < page.index("1 · Accuracy vs thinking budget")  # the claims come first


def test_index_opens_with_headline_claims_and_link(report):
    page = report["index"].read_text()
    headline, claims, cells = (page.index("data:image/png;base64"), page.index("Claims the records support"),
                               page.index("All 1 cells"))
    assert headline < claims < cells
    assert 'href="synthetic/05-report.html"' in page
