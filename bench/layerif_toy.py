"""LayerIF on the toy reasoner's grid: targets per module type vs uniform, and one weights fingerprint per recipe.

Usage: ``.venv/bin/python bench/layerif_toy.py [--model toy-reasoner] [--threads 1]``

The default study's toy settings (calibration ``toy-reasoning``, 32 x 128 windows, ``layerif_samples`` 8 as its
``params``): Magnitude and Wanda at 20% and 50%, Uniform and LayerIF (the paper's, scores computed by the kit).
Prints each recipe's attention / MLP targets, achieved global sparsity, modules clipped at 1 and the pruned
weights' fingerprint, then how many distinct fingerprints the recipes have (issue 20, item 6: a LayerIF recipe
must not save the uniform recipe's weights).
"""
from __future__ import annotations

import argparse
import warnings

import torch

import tts_prune
from tts_prune.study import notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-reasoner")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, tokenizer = tts_prune.load_model(args.model, dtype="float32")
    ids = notebook.calibration_ids(tokenizer, "toy-reasoning", 32, 128, 0)
    fingerprints = {}
    for method in ("magnitude", "wanda"):
        for sparsity in (0.2, 0.5):
            for allocation in ("uniform", "layerif"):
                model, _ = tts_prune.load_model(args.model, dtype="float32")
                config = tts_prune.PruneConfig(method=method, sparsity=sparsity, allocation=allocation, nsamples=32,
                                               seqlen=128, calibration="toy-reasoning", layerif_samples=8)
                with warnings.catch_warnings(record=True):
                    warnings.simplefilter("always")
                    result = tts_prune.prune(model, tokenizer, config, ids, show_progress=False)
                fingerprints[(method, sparsity, allocation)] = tts_prune.model_fingerprint(model)
                meta = result.allocation_meta
                targets = {k: [round(x, 3) for x in v] for k, v in meta.get("sparsity", {}).items()}
                print(f"{method} {sparsity} {allocation}: {fingerprints[(method, sparsity, allocation)]} "
                      f"global {result.global_sparsity:.4f} {targets or ''} clipped {meta.get('clipped')}", flush=True)
    print(f"distinct fingerprints: {len(set(fingerprints.values()))} of {len(fingerprints)} recipes")


if __name__ == "__main__":
    main()
