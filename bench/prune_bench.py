"""Pruning benchmark: time and peak memory per method on the embedded model, and a head-to-head with
llm-compressor's Wanda / SparseGPT (same model, same calibration tokens) when its venv is present.

    .venv/bin/python bench/prune_bench.py [--nsamples 16 --seqlen 256 --methods wanda,sparsegpt]

Every run happens in its own subprocess so that peak RSS (``ru_maxrss``) belongs to that run alone.
llm-compressor runs with the interpreter given by ``--bench-python`` (default ``.venv-bench/bin/python``,
made as described in BENCHMARKS.md); without it only our methods are measured.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METHODS = {  # label -> PruneConfig keyword arguments
    "magnitude": dict(method="magnitude"),
    "wanda": dict(method="wanda"),
    "sparsegpt": dict(method="sparsegpt"),
    # The references' per-row (Wanda) / per-block (SparseGPT) floor: what llm-compressor does, so the masks
    # are compared with these rows; the default rounding="exact" rows above hit the target to the weight.
    "wanda-floor": dict(method="wanda", rounding="floor"),
    "sparsegpt-floor": dict(method="sparsegpt", rounding="floor"),
    "wanda-2:4": dict(method="wanda", nm="2:4", sparsity=0.5),
    "wanda-owl": dict(method="wanda", allocation="owl", owl_lambda=0.08),
    "shortgpt": dict(method="shortgpt"),
}


def _peak_rss_mb() -> float:
    # VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's peak over exec.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _save_masks(model, path: Path) -> None:
    from tts_prune.models.layers import decoder_layers, prunable_linears, weight_matrix

    masks = {f"{i}.{name}": np.packbits((weight_matrix(m) == 0).cpu().numpy())
             for i, block in enumerate(decoder_layers(model)) for name, m in prunable_linears(block).items()}
    np.savez(path, **masks)


def worker_ours(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from tts_prune import PruneConfig, load_model, prune

    baseline = _peak_rss_mb()
    model, tokenizer = load_model(args.model_dir)
    model_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    ids = torch.load(args.ids)
    if args.method == "forward":  # one forward pass over the calibration tokens: Wanda's floor is two of these
        start = time.perf_counter()
        with torch.no_grad():
            for window in ids.split(1):
                model(input_ids=window, use_cache=False)
        return {"impl": "tts-prune", "method": "forward", "seconds": time.perf_counter() - start,
                "peak_rss_mb": _peak_rss_mb(), "rss_after_imports_mb": baseline, "model_mb": model_mb,
                "global_sparsity": 0.0}
    kwargs = dict(METHODS[args.method])
    kwargs.setdefault("sparsity", args.sparsity)
    config = PruneConfig(nsamples=ids.shape[0], seqlen=ids.shape[1], **kwargs)
    start = time.perf_counter()
    result = prune(model, tokenizer, config, calibration=ids, show_progress=False)
    seconds = time.perf_counter() - start
    _save_masks(model, Path(args.masks))
    return {"impl": "tts-prune", "method": args.method, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "rss_after_imports_mb": baseline, "model_mb": model_mb, "global_sparsity": result.global_sparsity}


def worker_llmcompressor(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import WandaPruningModifier
    from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier
    from transformers import AutoModelForCausalLM

    baseline = _peak_rss_mb()
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    model_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    ids = torch.load(args.ids)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist()})
    block = type(model.model.layers[0]).__name__
    common = dict(sparsity=args.sparsity, targets=[block], ignore=["re:.*lm_head"])
    modifier = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}[args.method](**common)
    start = time.perf_counter()
    oneshot(model=model, dataset=data, recipe=modifier, num_calibration_samples=ids.shape[0],
            max_seq_length=ids.shape[1], shuffle_calibration_samples=False, pipeline="sequential",
            output_dir=None)
    seconds = time.perf_counter() - start
    _save_masks(model, Path(args.masks))
    return {"impl": "llm-compressor", "method": args.method, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "rss_after_imports_mb": baseline, "model_mb": model_mb}


def _run(python: str, impl: str, method: str, args, tmp: Path) -> dict:
    masks = tmp / f"{impl}-{method}.npz"
    command = [python, __file__, "--worker", impl, "--method", method, "--model-dir", str(args.model_dir),
               "--ids", str(tmp / "ids.pt"), "--masks", str(masks), "--sparsity", str(args.sparsity),
               "--threads", str(args.threads)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{impl} {method} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["masks"] = str(masks)
    return record


def mask_agreement(a: Path, b: Path) -> float:
    """Share of prunable weights whose pruned/kept status is the same in both runs."""
    with np.load(a) as x, np.load(b) as y:
        same = total = 0
        for key in x.files:
            bits_a, bits_b = np.unpackbits(x[key]), np.unpackbits(y[key])
            same += int((bits_a == bits_b).sum())
            total += bits_a.size
    return same / total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ours", "llmcompressor"])
    parser.add_argument("--method", default=None)
    parser.add_argument("--methods", default="magnitude,wanda,sparsegpt,wanda-2:4,wanda-owl,shortgpt")
    parser.add_argument("--compare", default="wanda,sparsegpt", help="methods to also run with llm-compressor")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--ids", default=None)
    parser.add_argument("--masks", default=None)
    parser.add_argument("--nsamples", type=int, default=16)
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--sparsity", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write all records to this JSON file")
    parser.add_argument("--bench-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    args = parser.parse_args(argv)
    if args.worker:
        record = (worker_ours if args.worker == "ours" else worker_llmcompressor)(args)
        print(json.dumps(record))
        return 0

    import torch

    from tts_prune import calibration_batches
    from transformers import AutoTokenizer

    from tts_prune.models.embedded import embedded_model_dir

    args.model_dir = args.model_dir or str(embedded_model_dir(args.model))
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        torch.save(calibration_batches(tokenizer, "gsm8k", args.nsamples, args.seqlen, seed=0), tmp / "ids.pt")
        print(f"model {args.model} ({args.model_dir}); calibration gsm8k {args.nsamples} x {args.seqlen} tokens; "
              f"sparsity {args.sparsity}; torch threads {args.threads}")
        # RSS/model counts the interpreter, torch and transformers (~400 MB here); "extra/model" is
        # (peak - RSS after imports) / model size: what the pruning run itself needs beyond the weights.
        print(f"{'impl':<15}{'method':<12}{'time s':>9}{'peak RSS MB':>13}{'RSS/model':>11}{'extra/model':>13}"
              f"{'sparsity':>10}")
        records = []
        ours = {}
        for method in args.methods.split(","):
            r = ours[method] = _run(sys.executable, "ours", method, args, tmp)
            records.append(r)
            print(f"{'tts-prune':<15}{method:<12}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}"
                  f"{r['peak_rss_mb'] / r['model_mb']:>11.2f}{_extra(r):>13.2f}{r['global_sparsity']:>10.4f}",
                  flush=True)
        if "forward" in ours:
            floor = 2 * ours["forward"]["seconds"]
            for method, r in ours.items():
                if method.startswith("wanda"):
                    print(f"  tts-prune {method}: {r['seconds'] / floor:.2f}x the two-forward-pass floor "
                          f"({floor:.1f} s)", flush=True)
        if not Path(args.bench_python).exists():
            print(f"llm-compressor comparison skipped: {args.bench_python} not found (see BENCHMARKS.md)")
            args.compare = ""
        for method in filter(None, args.compare.split(",")):
            r = _run(args.bench_python, "llmcompressor", method, args, tmp)
            records.append(r)
            print(f"{'llm-compressor':<15}{method:<12}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}"
                  f"{r['peak_rss_mb'] / r['model_mb']:>11.2f}{_extra(r):>13.2f}{'':>10}", flush=True)
            o = ours.get(f"{method}-floor", ours.get(method))  # same rounding rule as llm-compressor
            if o is not None:
                r["mask_agreement"] = mask_agreement(Path(o["masks"]), Path(r["masks"]))
                print(f"  {method} vs tts-prune {o['method']}: llm-compressor/tts-prune time "
                      f"{r['seconds'] / o['seconds']:.2f}x, "
                      f"peak RSS {r['peak_rss_mb'] / o['peak_rss_mb']:.2f}x, "
                      f"mask agreement {r['mask_agreement']:.5f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(records, indent=2))
    return 0


def _extra(record: dict) -> float:
    return (record["peak_rss_mb"] - record["rss_after_imports_mb"]) / record["model_mb"]


if __name__ == "__main__":
    sys.exit(main())
