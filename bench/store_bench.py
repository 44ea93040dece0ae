"""Benchmark of the result store's reads at the paper's scale: one 04 cell of MATH500 (500 problems x 3 seeds x
5 budgets = 7,500 records, thinking texts of ~8k tokens ~ 32 KB each), written as shards of 250 records.

Times, in one run: ``keys()`` (what ``evaluate`` reads before generating), ``load_results(columns=...)`` of
the small columns (what tables and plots need), ``load_results(keys=...)`` of one benchmark's records among
four benchmarks' shards, and the full parse that each of them replaced. Every read's result is checked
against the full parse.

    python bench/store_bench.py [--records 7500] [--text-kb 32] [--out /tmp/store-bench]
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from tts_prune.tts.results import ResultStore, load_results


def build(root: Path, records: int, text_kb: int, per_shard: int = 250) -> None:
    store, text = ResultStore(root), "x" * (text_kb * 1024)
    for benchmark in ("math500", "aime24", "amc23", "gpqa-diamond"):
        rows = [{"model": "m", "benchmark": benchmark, "problem_id": f"p{i // 15}", "seed": i % 3,
                 "budget": 512 << (i % 5), "correct": i % 2 == 0, "thinking_tokens": 512, "answer_tokens": 40,
                 "prompt": "q" * 400, "thinking": text, "forced": "</think>", "answer": "\\boxed{1}"}
                for i in range(records)]
        for start in range(0, records, per_shard):
            store.append(rows[start:start + per_shard])


def timed(function):
    began = time.perf_counter()
    value = function()
    return time.perf_counter() - began, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=7500, help="records per benchmark (4 benchmarks)")
    parser.add_argument("--text-kb", type=int, default=32, help="thinking text per record, KB")
    parser.add_argument("--out", default="/tmp/store-bench")
    args = parser.parse_args()
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    build(root, args.records, args.text_kb)
    full_s, full = timed(lambda: load_results(root))
    keys_s, keys = timed(lambda: ResultStore(root).keys())
    small_s, small = timed(lambda: load_results(root, columns=["benchmark", "budget", "correct", "thinking_tokens"]))
    wanted = set(full.loc[full["benchmark"] == "math500", "key"])
    some_s, some = timed(lambda: load_results(root, keys=wanted))
    assert keys == set(full["key"]) and small["key"].tolist() == full["key"].tolist()
    assert set(some["key"]) == wanted and (some["thinking"].str.len() == args.text_kb * 1024).all()
    size = sum(p.stat().st_size for p in root.iterdir()) / 2**20
    print(f"store: {len(full)} records, {size:.0f} MiB")
    print(f"full parse (before): {full_s:.2f} s")
    print(f"keys() from the indexes: {keys_s:.3f} s ({full_s / keys_s:.0f}x faster)")
    print(f"4 small columns: {small_s:.3f} s ({full_s / small_s:.0f}x faster)")
    print(f"one benchmark's records by key (texts included): {some_s:.2f} s ({full_s / some_s:.1f}x faster)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
