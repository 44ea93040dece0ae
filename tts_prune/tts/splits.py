"""Training and validation problems that never overlap a benchmark's test problems.

Two uses, both answers to the referee of arXiv 2604.25098 ("allocations possibly tuned on the test
benchmarks"): ``train`` problems feed the ``self-traces`` calibration source (the dense model's own
reasoning on them), ``validation`` problems select allocation hyper-parameters (``tts_prune.study.selection``).
The test problems are what ``load_benchmark`` returns and stay untouched by both.

Where each benchmark's disjoint problems come from (``POOLS``; documented in the README):

| benchmark | pool | why it is disjoint |
|---|---|---|
| toy-reasoning | the toy task's *train* split | the split is a function of a problem's text hash (``toy_task.split_of``) |
| gsm8k | GSM8K *train* (``gsm8k_train.jsonl.gz``) | a different file from the test split |
| every other (MATH500, AIME24, AMC23, GPQA-Diamond, ...) | GSM8K *train* | a different source, as the referee asked for AIME/AMC |

Inside a pool, a fixed function of the problem text's SHA-256 (``VALIDATION_PER_MILLE`` of 1000 buckets)
puts each problem in ``validation`` or ``train``, so the two are disjoint too and no seed can move a problem
across. Named ``<benchmark>@<split>`` (e.g. ``gsm8k@validation``), a split runs through ``evaluate`` like
any benchmark.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import random
from typing import Callable

from .. import paths

SPLITS = ("train", "validation")
VALIDATION_PER_MILLE = 200  # 20% of a pool's problems are validation, the rest train


def split_of(text: str) -> str:
    """``validation`` or ``train`` for a pool problem: a fixed function of its text's SHA-256."""
    bucket = int(hashlib.sha256(("pool-split/" + text).encode("utf-8")).hexdigest(), 16) % 1000
    return "validation" if bucket < VALIDATION_PER_MILLE else "train"


def _toy_pool(n: int, seed: int) -> list[dict]:
    from ..models.toy_task import make_problems

    # Generate enough of the toy *train* split that both sub-splits have n problems.
    return [{"id": p["id"], "problem": p["problem"], "answer": str(p["answer"])}
            for p in make_problems(max(8 * n, 64), seed=seed, split="train")]


def _gsm8k_pool(n: int, seed: int) -> list[dict]:
    path = paths.BENCHMARK_DIR / "gsm8k_train.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the GSM8K train split is the held-out pool; run `make data`")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [{"id": f"gsm8k-train-{i}", "problem": r["question"], "answer": r["answer"].split("####")[-1].strip()}
            for i, r in enumerate(rows)]


# pool name -> (problems of the pool, grader kind); benchmark -> pool name (default: gsm8k)
POOLS: dict[str, tuple[Callable[[int, int], list[dict]], str]] = {"toy-reasoning": (_toy_pool, "numeric"),
                                                                  "gsm8k": (_gsm8k_pool, "numeric")}
POOL_OF: dict[str, str] = {"toy-reasoning": "toy-reasoning", "gsm8k": "gsm8k"}
DEFAULT_POOL = "gsm8k"
DEFAULT_SIZE = 64


def pool_of(benchmark: str) -> str:
    return POOL_OF.get(benchmark, DEFAULT_POOL)


def split_problems(benchmark: str, split: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """``n`` problems (default 64) of ``split`` ("train" or "validation") for ``benchmark``, disjoint from its
    test problems and from the other split; shuffled by ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is unknown; use one of {SPLITS} (the test split is the benchmark itself)")
    n = DEFAULT_SIZE if n is None else n
    if n < 1:
        raise ValueError(f"n={n} must be a positive number of problems")
    pool, _ = POOLS[pool_of(benchmark)]
    problems = [p for p in pool(n, seed) if split_of(p["problem"]) == split]
    random.Random(f"{benchmark}/{split}/{seed}").shuffle(problems)
    if len(problems) < n:
        raise ValueError(f"the {pool_of(benchmark)} pool has only {len(problems)} {split} problems; ask for fewer")
    return [{**p, "id": f"{split}-{p['id']}"} for p in problems[:n]]


def split_spec(name: str) -> tuple[Callable[[int | None, int], list[dict]], str]:
    """(loader (limit, seed) -> problems, grader kind) for ``<benchmark>@<split>``; ``benchmarks.resolve``
    wraps it in a ``Benchmark``."""
    base, _, split = name.partition("@")
    if split not in SPLITS:
        raise ValueError(f"benchmark {name!r}: split {split!r} is unknown; use {base}@train or {base}@validation")
    return (lambda limit, seed: split_problems(base, split, limit, seed)), POOLS[pool_of(base)][1]
