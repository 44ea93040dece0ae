"""Sparse matmul kernels a user could run pruned weights on, against dense matmul on the same shapes, same run.

Usage: ``python bench/sparse_kernels.py [--device cpu|cuda] [--models s1.1-7b qwen3-8b] [--tokens 1 16 64 2048]
[--time-limit 540] [--out sparse_kernels.json]``.

Shapes: every distinct linear of s1.1-7B (Qwen2.5-7B: hidden 3584, intermediate 18944, 28 heads, 4 KV heads,
head_dim 128) and Qwen3-8B (hidden 4096, intermediate 12288, 32 heads, 8 KV heads, head_dim 128), as
``y = x W^T`` with x of ``tokens`` rows: 1, 16 and 64 rows are decode steps of that many sequences, 2048 a prefill.
Weights are pruned by magnitude: 2:4 (two of every four consecutive inputs kept, what the semi-structured kernels
need), and 50% and 20% unstructured (per-matrix threshold, what Magnitude/Wanda at those sparsities leave).

Kernels (``KERNELS``): ``dense`` (``F.linear``; the pruned matrix is stored dense, zeros and all), ``csr`` and ``coo``
(``torch.sparse.mm`` on the CPU or CUDA), and on an NVIDIA GPU torch's semi-structured 2:4 ``F.linear`` through
cuSPARSELt and through CUTLASS (``torch.sparse.to_sparse_semi_structured``; Ampere or newer, fp16/bf16).
A kernel that cannot run here (semi-structured on a CPU) is listed with the reason. Each case is checked against
the dense product of the same pruned weights before it is timed (``torch.utils.benchmark.Timer``, median of
``blocked_autorange``, which synchronises CUDA). ``ratio`` = kernel time / dense time of the same case, so ratios
are comparable within one run even on a loaded machine; absolute times are not. ``--time-limit`` stops starting
new cases (the remaining ones are reported as not run), so a GPU check fits its slot.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

MODELS = {"s1.1-7b": dict(hidden=3584, intermediate=18944, heads=28, kv_heads=4, head_dim=128),
          "qwen3-8b": dict(hidden=4096, intermediate=12288, heads=32, kv_heads=8, head_dim=128)}
PATTERNS = ("2:4", "50%", "20%")


def linear_shapes(m: dict) -> dict[str, tuple[int, int]]:
    """``(out_features, in_features)`` of each distinct linear of a decoder block (k and v share one, gate and up)."""
    return {"q_proj": (m["heads"] * m["head_dim"], m["hidden"]),
            "k_proj|v_proj": (m["kv_heads"] * m["head_dim"], m["hidden"]),
            "o_proj": (m["hidden"], m["heads"] * m["head_dim"]),
            "gate_proj|up_proj": (m["intermediate"], m["hidden"]),
            "down_proj": (m["hidden"], m["intermediate"])}


def prune(weight: torch.Tensor, pattern: str) -> torch.Tensor:
    """``weight`` with the smallest-magnitude entries zeroed: N:M along the input dimension, or a fraction per matrix."""
    if ":" in pattern:
        n, m = (int(v) for v in pattern.split(":"))
        groups = weight.abs().reshape(weight.shape[0], -1, m)
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.topk(n, dim=-1).indices, True)
        return weight * keep.reshape(weight.shape)
    share = float(pattern.rstrip("%")) / 100
    k = max(1, int(weight.numel() * share))
    threshold = weight.abs().flatten().float().kthvalue(k).values.to(weight.dtype)
    return weight * (weight.abs() > threshold)


def _semi_structured(cutlass: bool):
    def prepare(weight: torch.Tensor):
        from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

        SparseSemiStructuredTensor._FORCE_CUTLASS = cutlass
        return to_sparse_semi_structured(weight)

    return prepare


def _semi_structured_missing(device: torch.device, pattern: str) -> str | None:
    if device.type != "cuda":
        return "semi-structured sparse tensors need a CUDA device (torch: 'Only CUDA tensors are supported')"
    if pattern != "2:4":
        return "semi-structured kernels take 2:4 weights only"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "semi-structured kernels need an Ampere (sm80) or newer GPU"
    return None


# name -> (why it cannot run here or None, prepare(pruned weight) -> operand, run(x, operand) -> y)
KERNELS = {
    "dense": (lambda device, pattern: None, lambda w: w, lambda x, w: F.linear(x, w)),
    "csr": (lambda device, pattern: None, lambda w: w.to_sparse_csr(), lambda x, w: torch.sparse.mm(w, x.t()).t()),
    "coo": (lambda device, pattern: None, lambda w: w.to_sparse().coalesce(),
            lambda x, w: torch.sparse.mm(w, x.t()).t()),
    "semi-structured cuSPARSELt": (_semi_structured_missing, _semi_structured(False), lambda x, w: F.linear(x, w)),
    "semi-structured CUTLASS": (_semi_structured_missing, _semi_structured(True), lambda x, w: F.linear(x, w)),
}


def _median(fn, min_run_time: float) -> float:
    return Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def run(device: torch.device, dtype: torch.dtype, models, tokens, patterns, time_limit: float, min_run_time: float,
        kernels, linears=None) -> list[dict]:
    start, rows = time.perf_counter(), []
    generator = torch.Generator().manual_seed(0)
    for model in models:
        for linear, (out_f, in_f) in linear_shapes(MODELS[model]).items():
            if linears and linear not in linears:
                continue
            weight = (torch.randn(out_f, in_f, generator=generator) / in_f ** 0.5).to(device, dtype)
            for pattern in patterns:
                pruned = prune(weight, pattern)
                operands = {}
                for rows_x in tokens:
                    x = torch.randn(rows_x, in_f, generator=generator).to(device, dtype)
                    reference, dense_s = None, None
                    for name in kernels:
                        missing, prepare, apply = KERNELS[name]
                        row = dict(model=model, linear=linear, out_features=out_f, in_features=in_f, tokens=rows_x,
                                   pattern=pattern, kernel=name)
                        reason = missing(device, pattern)
                        if reason is None and time.perf_counter() - start > time_limit:
                            reason = f"not run: past --time-limit {time_limit:g} s"
                        if reason is not None:
                            rows.append({**row, "seconds": None, "ratio": None, "note": reason})
                            continue
                        try:
                            if name not in operands:
                                operands[name] = prepare(pruned)
                            fn = lambda: apply(x, operands[name])  # noqa: E731
                            y = fn()
                            reference = y if reference is None else reference
                            error = float((y.float() - reference.float()).abs().max() / reference.float().abs().max())
                            if error > (1e-3 if dtype == torch.float32 else 2e-2):
                                raise RuntimeError(f"differs from dense by {error:.2e} (relative max)")
                            seconds = _median(fn, min_run_time)
                        except (RuntimeError, NotImplementedError) as failure:
                            rows.append({**row, "seconds": None, "ratio": None, "note": f"failed: {failure}"[:200]})
                            continue
                        dense_s = seconds if name == "dense" else dense_s
                        rows.append({**row, "seconds": seconds, "ratio": seconds / dense_s if dense_s else None,
                                     "note": ""})
                        print(f"{model:9s} {linear:18s} {out_f:6d}x{in_f:<6d} t={rows_x:<5d} {pattern:4s} {name:27s} "
                              f"{seconds * 1e3:10.3f} ms  x{rows[-1]['ratio'] or float('nan'):.2f}", flush=True)
                operands.clear()
    return rows


def markdown(rows: list[dict]) -> str:
    """Median ratio to dense per (tokens, pattern, kernel) over the shapes, with the range; the table for BENCHMARKS."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["ratio"] is not None and r["kernel"] != "dense"])
    if df.empty:
        return "no sparse kernel ran"
    table = df.groupby(["tokens", "pattern", "kernel"])["ratio"].agg(["median", "min", "max", "count"]).reset_index()
    lines = ["| tokens | pattern | kernel | time / dense (median over shapes) | min | max | shapes |",
             "|---:|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.tokens} | {r.pattern} | {r.kernel} | {r.median:.2f} | {r.min:.2f} | {r.max:.2f} | {r.count} |"
              for r in table.itertuples()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default=None, help="default: float32 on the CPU, float16 on CUDA")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--tokens", nargs="+", type=int, default=[1, 16, 64, 2048])
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS))
    parser.add_argument("--kernels", nargs="+", default=[k for k in KERNELS if k != "coo"], choices=list(KERNELS),
                        help="default: all but coo (40-250x slower than dense on the CPU in our first run)")
    parser.add_argument("--linears", nargs="+", default=None,
                        help="only these shapes, e.g. gate_proj|up_proj down_proj (default: all five)")
    parser.add_argument("--time-limit", type=float, default=540.0, help="seconds after which no new case starts")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds of timed runs per case")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="", help="JSON file for every row and the summary table")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; run with --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {where}, {dtype}", flush=True)
    rows = run(device, dtype, args.models, args.tokens, args.patterns, args.time_limit, args.min_run_time,
               ["dense", *[k for k in args.kernels if k != "dense"]], args.linears)
    summary = markdown(rows)
    print(summary)
    if args.out:
        Path(args.out).write_text(json.dumps({"torch": torch.__version__, "device": where, "dtype": str(dtype),
                                              "rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
