"""Every pruning method and allocation on the embedded Qwen2.5-Coder-0.5B-Instruct (the s1.1 stand-in).

Usage (after `make qwen`): ``.venv/bin/python bench/qwen_pruning.py [--threads 1] [--nsamples 8 --seqlen 128]``

One row per (method, allocation) at ``--sparsity``: seconds, achieved global sparsity (recomputed from
the weights), blocks left, held-out perplexity (GSM8K test solutions, as in 03-pruning) and the relative
change of the logits on one prompt. Then one pruned model is saved and reloaded, and its logits and
fingerprint must equal the in-memory model's. Each run starts from the cached dense checkpoint.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
import torch

import tts_prune
from tts_prune.study import notebook

MODEL = "qwen2.5-coder-0.5b-instruct"
RUNS = [("magnitude", "uniform"), ("wanda", "uniform"), ("sparsegpt", "uniform"), ("shortgpt", "uniform"),
        ("wanda", "owl"), ("wanda", "layerif"), ("wanda", "alphapruning"), ("magnitude", "owl")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sparsity", type=float, default=0.2)
    parser.add_argument("--nsamples", type=int, default=8)
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--ppl-tokens", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    dense, tokenizer = tts_prune.load_model(MODEL, dtype="float32", device="cpu")
    print(f"load {time.perf_counter() - start:.1f} s; {type(dense).__name__}, "
          f"{len(tts_prune.decoder_layers(dense))} blocks, {sum(p.numel() for p in dense.parameters()) / 1e6:.0f} M params")
    print(tts_prune.layer_summary(dense).head(8).to_string(index=False))
    ids = notebook.calibration_ids(tokenizer, "gsm8k", args.nsamples, args.seqlen)  # (nsamples, seqlen), train split
    heldout, _ = notebook.heldout(tokenizer, "", args.ppl_tokens)  # GSM8K test solutions (every token scored)
    prompt = tokenizer("def fibonacci(n):", return_tensors="pt").input_ids
    with torch.no_grad():
        reference = dense(prompt).logits
    ppl_dense = tts_prune.perplexity(dense, tokenizer, heldout, seqlen=512, show_progress=False)
    rows = [dict(method="dense", allocation="-", seconds=0.0, sparsity=0.0, blocks=len(tts_prune.decoder_layers(dense)),
                 ppl=ppl_dense, logit_change=0.0)]
    print(rows[-1], flush=True)
    del dense

    saved = None
    for method, allocation in RUNS:
        model, _ = tts_prune.load_model(MODEL, dtype="float32", device="cpu")
        config = tts_prune.PruneConfig(method=method, sparsity=args.sparsity, allocation=allocation,
                                       nsamples=args.nsamples, seqlen=args.seqlen, calibration="gsm8k",
                                       owl_lambda=min(0.08, args.sparsity), layerif_samples=args.nsamples)
        t = time.perf_counter()
        result = tts_prune.prune(model, tokenizer, config, ids, show_progress=False)
        seconds = time.perf_counter() - t
        report = tts_prune.sparsity_report(model)
        achieved = result.global_sparsity if method == "shortgpt" else report["zeros"].sum() / report["numel"].sum()
        with torch.no_grad():
            logits = model(prompt).logits
        rows.append(dict(method=method, allocation=allocation, seconds=round(seconds, 1), sparsity=round(float(achieved), 4),
                         blocks=len(tts_prune.decoder_layers(model)),
                         ppl=tts_prune.perplexity(model, tokenizer, heldout, seqlen=512, show_progress=False),
                         logit_change=float((logits - reference).norm() / reference.norm()),
                         layer_range=f"{result.layers['target_sparsity'].min():.3f}-{result.layers['target_sparsity'].max():.3f}"))
        print(rows[-1], flush=True)
        if (method, allocation) == ("wanda", "owl"):
            saved = (model, result, logits)
        else:
            del model

    model, result, logits = saved
    with tempfile.TemporaryDirectory() as tmp:
        out = tts_prune.save_pruned(model, tokenizer, result, tmp, source=MODEL)
        again, _ = tts_prune.load_model(out, dtype="float32", device="cpu")
        with torch.no_grad():
            same = torch.equal(again(prompt).logits, logits)
        fingerprints = (tts_prune.model_fingerprint(model), tts_prune.model_fingerprint(again))
    assert same and fingerprints[0] == fingerprints[1], "a saved pruned Qwen2.5 must reload bit-identically"
    print(f"save/reload of wanda+owl: logits identical, fingerprint {fingerprints[0]}")
    table = pd.DataFrame(rows)
    table["ppl"] = table["ppl"].round(2)
    table["logit_change"] = table["logit_change"].round(3)
    print(table.to_markdown(index=False) if hasattr(table, "to_markdown") else table.to_string(index=False))
    print(f"total {time.perf_counter() - start:.0f} s, threads {args.threads}, calibration {args.nsamples} x {args.seqlen}")


if __name__ == "__main__":
    main()
