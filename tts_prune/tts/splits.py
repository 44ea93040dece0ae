"""Training and validation problems that never overlap a benchmark's test problems.

Two uses, both answers to the referee of arXiv 2604.25098 ("allocations possibly tuned on the test
benchmarks"): ``train`` problems feed the ``self-traces`` calibration source (the dense model's own
reasoning on them), ``validation`` problems select allocation hyper-parameters (``tts_prune.study.selection``).
The test problems are what ``load_benchmark`` returns and stay untouched by both.

Where each benchmark's disjoint problems come from (its task's ``Benchmark.train`` in the task registry,
``tts_prune.tts.benchmarks``, else GSM8K train; documented in the README):

| benchmark | pool | why it is disjoint |
|---|---|---|
| toy-reasoning | the toy task's *train* split | the split is a function of a problem's text hash (``toy_task.split_of``) |
| gsm8k | GSM8K *train* (``gsm8k_train.jsonl.gz``) | a different file from the test split |
| every other (MATH500, AIME24, AMC23, GPQA-Diamond, ...) | GSM8K *train* | a different source, as the referee asked for AIME/AMC |

The pools are the task registry's (``benchmarks.Benchmark.train``) and the draw is ``benchmarks.split_problems``
(this module holds only the hash split, so the registry imports it and not the reverse). Inside a pool, a fixed function of the problem text's SHA-256 (``VALIDATION_PER_MILLE`` of 1000 buckets)
puts each problem in ``validation`` or ``train``, so the two are disjoint too and no seed can move a problem
across. Named ``<benchmark>@<split>`` (e.g. ``gsm8k@validation``), a split runs through ``evaluate`` like
any benchmark.
"""
from __future__ import annotations

import hashlib

SPLITS = ("train", "validation")
VALIDATION_PER_MILLE = 200  # 20% of a pool's problems are validation, the rest train


def split_of(text: str) -> str:
    """``validation`` or ``train`` for a pool problem: a fixed function of its text's SHA-256."""
    bucket = int(hashlib.sha256(("pool-split/" + text).encode("utf-8")).hexdigest(), 16) % 1000
    return "validation" if bucket < VALIDATION_PER_MILLE else "train"


DEFAULT_SIZE = 64  # problems per split when none is asked for
