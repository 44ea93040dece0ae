"""Simulated study records with known structure: what the statistics tests recover.

Grades are drawn on the probability scale, ``p[p, s] = m + a[p] + b[s]`` with uniform effects, so the true
components are closed forms: ``Var a = w^2/3``, ``Var b = v^2/3`` and the residual ``E[p(1 - p)]``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def additive_grid(rng, problems: int, seeds: int, mean: float, problem_halfwidth: float, seed_halfwidth: float):
    """(problem effects, seed effects, probabilities, 0/1 grades), each grade independent given its probability."""
    a = rng.uniform(-problem_halfwidth, problem_halfwidth, problems)
    b = rng.uniform(-seed_halfwidth, seed_halfwidth, seeds)
    p = np.clip(mean + a[:, None] + b[None, :], 0, 1)
    return a, b, p, (rng.random(p.shape) < p).astype(float)


def true_components(mean: float, problem_halfwidth: float, seed_halfwidth: float) -> tuple[float, float, float]:
    vp, vs = problem_halfwidth ** 2 / 3, seed_halfwidth ** 2 / 3
    return vp, vs, mean - mean ** 2 - vp - vs


def records(grades: np.ndarray, run: str = "dense", budget: int = 8, model: str = "toy",
            benchmark: str = "toy-reasoning", seeds=None, **extra) -> pd.DataFrame:
    """A records frame as the store returns it (recipe dict included) for a (problems, seeds) grade matrix."""
    method, _, rest = run.partition("/")
    allocation, _, sparsity = rest.partition("/")
    recipe = {} if method == "dense" else {"method": method, "allocation": allocation or "uniform",
                                           "sparsity": float(sparsity or 0.5)}
    problems, count = grades.shape
    seeds = np.arange(count) if seeds is None else np.asarray(list(seeds))
    frame = pd.DataFrame({"problem_id": np.repeat([f"p{p:03d}" for p in range(problems)], count),
                          "seed": np.tile(seeds, problems), "budget": budget,
                          "correct": grades.reshape(-1).astype(bool), "model": model, "benchmark": benchmark, **extra})
    frame["recipe"] = [recipe] * len(frame)
    return frame
