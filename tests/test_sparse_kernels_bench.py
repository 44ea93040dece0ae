"""bench/sparse_kernels.py: its pruning patterns, and that every kernel it times computes the dense product."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "sparse_kernels.py"


def _bench():
    spec = importlib.util.spec_from_file_location("sparse_kernels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patterns_zero_what_they_say():
    bench = _bench()
    weight = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    two_four = bench.prune(weight, "2:4").reshape(64, -1, 4)
    assert ((two_four != 0).sum(-1) == 2).all()  # two of every four consecutive inputs kept...
    kept = weight.reshape(64, -1, 4).abs().topk(2, dim=-1).values.sum(-1)
    assert torch.allclose(two_four.abs().sum(-1), kept)  # ...the two largest
    for pattern, share in (("50%", 0.5), ("20%", 0.2)):
        pruned = bench.prune(weight, pattern)
        assert int((pruned == 0).sum()) == int(weight.numel() * share)  # the smallest k = floor(share x n)
        assert pruned[pruned != 0].abs().min() >= weight.abs()[pruned == 0].max()


def test_cpu_run_times_csr_against_dense_and_says_why_semi_structured_cannot_run(monkeypatch):
    bench = _bench()
    monkeypatch.setitem(bench.MODELS, "tiny", dict(hidden=128, intermediate=256, heads=2, kv_heads=1, head_dim=64))
    rows = bench.run(torch.device("cpu"), torch.float32, ["tiny"], [1, 8], ["2:4"], time_limit=60, min_run_time=0.001,
                     kernels=["dense", "csr", "coo", "semi-structured CUTLASS"])
    assert len(rows) == 5 * 2 * 4  # distinct linears (q, k|v, o, gate|up, down) x tokens x kernels
    assert all(r["ratio"] is not None and r["ratio"] > 0 for r in rows if r["kernel"] in ("dense", "csr", "coo"))
    assert all(r["ratio"] == 1.0 for r in rows if r["kernel"] == "dense")
    assert all("CUDA" in r["note"] for r in rows if r["kernel"] == "semi-structured CUTLASS")
    assert "| 8 | 2:4 | csr |" in bench.markdown(rows)
