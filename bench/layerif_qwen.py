"""LayerIF on the embedded Qwen2.5-Coder-0.5B-Instruct: the paper's per-module scores vs the block-wise approximation.

Usage (after `make qwen`): ``.venv/bin/python bench/layerif_qwen.py [--threads 1] [--nsamples 8 --seqlen 128]
[--layerif-samples 4] [--runs dense,uniform,owl,layerif,layerif-block,layerif-row]``

1. On the same windows (``layerif_samples`` = nsamples: half train, half validation, GSM8K train split) the
   kit's computed per-module LayerIF scores (exact per-sample gradients, DataInf per matrix; summed positive
   influence per block's attention and MLP) and ``layerif-block``'s per-block scores (DataInf on 32 x 32
   gradient sketches, summed positive harmful influence); Spearman rank correlations between them and between
   the per-block sparsities the two allocations give at ``--sparsity``.
2. Held-out perplexity (GSM8K test solutions, as 03-pruning) after Wanda at ``--sparsity`` with Uniform / OWL /
   LayerIF (the paper's; Wanda ranked per matrix, as the authors' ``prune_wanda_influence``) / LayerIF with
   Wanda per row (the allocation's effect alone) / LayerIF-block. Each run starts from the cached dense model;
   the LayerIF runs read the scores of step 1 back from the authors' pickle format (not recomputed), and
   LayerIF-block's allocation of step 1 is passed as its per-block list.
"""
from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from scipy.stats import spearmanr

import tts_prune
from tts_prune.pruning.allocation import _eps_map, layerif_scores
from tts_prune.pruning.influence import module_influence
from tts_prune.pruning.layerif import layerif_windows, positive_sums
from tts_prune.study import notebook

MODEL = "qwen2.5-coder-0.5b-instruct"
RUNS = ["dense", "uniform", "owl", "layerif", "layerif-block", "layerif-row"]  # layerif-row: LayerIF, Wanda per row


def scores_and_correlations(dense, tokenizer, ids, base, args):
    """Step 1: both score sets on the same windows, their rank correlations, and the two allocations."""
    config = tts_prune.PruneConfig(allocation="layerif", **base)
    train, validation = layerif_windows(ids, config, tokenizer)
    t = time.perf_counter()
    records = module_influence(dense, train, validation, show_progress=False)
    module_s = time.perf_counter() - t
    sums = positive_sums({r["sample_id"]: r["scores"] for r in records}, len(tts_prune.decoder_layers(dense)))
    t = time.perf_counter()
    block = layerif_scores(dense, train, validation_ids=validation, seed=0, show_progress=False)
    block_s = time.perf_counter() - t
    # The computed scores go through the authors' pickle format, so the pruning runs reuse them.
    scores_file = Path(args.scores_out)
    scores_file.write_bytes(pickle.dumps(records))
    paper = tts_prune.allocate(dense, tokenizer, tts_prune.PruneConfig(allocation="layerif", layerif_scores=str(scores_file),
                                                                       **base), ids, show_progress=False)
    block_config = tts_prune.PruneConfig(allocation="layerif-block", **base)
    approx = _eps_map(block, dense, block_config, block_config.layerif_eps)
    signed = [sum(r["scores"][f"layer_{i}_{k}"] for r in records for k in ("attention", "mlp")) for i in range(len(block))]
    corr = {
        "attention positive sums vs block scores": spearmanr(sums["attention"], block).statistic,
        "MLP positive sums vs block scores": spearmanr(sums["mlp"], block).statistic,
        "attention + MLP positive sums vs block scores": spearmanr(sums["attention"] + sums["mlp"], block).statistic,
        "signed module influence (block total) vs block scores": spearmanr(signed, block).statistic,
        "attention sums vs MLP sums": spearmanr(sums["attention"], sums["mlp"]).statistic,
        "per-block sparsity: layerif vs layerif-block": spearmanr(list(paper), list(approx)).statistic,
    }
    print(f"scores: per-module {module_s:.0f} s, block sketches {block_s:.0f} s; {train.shape[0]} train + "
          f"{validation.shape[0]} validation windows of {args.seqlen} tokens; scores saved to {scores_file}")
    print(pd.Series(corr, name="Spearman rho").round(3).to_string())
    print("layerif attention sparsity:", [round(x, 3) for x in paper.by_kind["attention"]])
    print("layerif MLP sparsity:      ", [round(x, 3) for x in paper.by_kind["mlp"]])
    print("layerif-block sparsity:    ", [round(x, 3) for x in approx], flush=True)
    return scores_file, list(approx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sparsity", type=float, default=0.2)
    parser.add_argument("--nsamples", type=int, default=8)
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--layerif-samples", type=int, default=0, help="windows LayerIF differentiates (0: nsamples)")
    parser.add_argument("--ppl-tokens", type=int, default=1024)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {RUNS}")
    parser.add_argument("--scores-out", default=str(Path(tempfile.gettempdir()) / "layerif_qwen_scores.pkl"))
    args = parser.parse_args()
    runs = args.runs.split(",")
    if set(runs) - set(RUNS):
        parser.error(f"--runs {args.runs!r}: allowed {RUNS}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dense, tokenizer = tts_prune.load_model(args.model, dtype="float32", device="cpu")
    ids = notebook.calibration_ids(tokenizer, "gsm8k", args.nsamples, args.seqlen)  # (nsamples, seqlen), train split
    heldout, scored = notebook.heldout(tokenizer, "", args.ppl_tokens)  # GSM8K test solutions
    base = dict(method="wanda", sparsity=args.sparsity, nsamples=args.nsamples, seqlen=args.seqlen, calibration="gsm8k",
                owl_lambda=min(0.08, args.sparsity), layerif_samples=args.layerif_samples or args.nsamples)
    settings = {"uniform": {}, "owl": {"allocation": "owl"}}
    if {"layerif", "layerif-block", "layerif-row"} & set(runs):
        scores_file, approx = scores_and_correlations(dense, tokenizer, ids, base, args)
        settings.update({"layerif": {"allocation": "layerif", "layerif_scores": str(scores_file)},
                         "layerif-row": {"allocation": "layerif", "layerif_scores": str(scores_file), "wanda_scope": "row"},
                         "layerif-block": {"layer_sparsities": approx}})  # step 1's allocation, as a list
    rows = []
    if "dense" in runs:
        rows.append(dict(allocation="dense", wanda_scope="-", seconds=0.0, sparsity=0.0, range="-",
                         ppl=tts_prune.perplexity(dense, tokenizer, heldout, seqlen=512, show_progress=False, scored=scored)))
        print(rows[-1], flush=True)
    del dense
    for allocation in [r for r in runs if r != "dense"]:
        model, _ = tts_prune.load_model(args.model, dtype="float32", device="cpu")
        config = tts_prune.PruneConfig(**base, **settings[allocation])
        t = time.perf_counter()
        result = tts_prune.prune(model, tokenizer, config, ids, show_progress=False)
        targets = result.matrices["target_sparsity"]
        rows.append(dict(allocation=allocation, wanda_scope=config.wanda_scope, seconds=round(time.perf_counter() - t, 1),
                         sparsity=round(result.global_sparsity, 4), range=f"{targets.min():.3f}-{targets.max():.3f}",
                         ppl=tts_prune.perplexity(model, tokenizer, heldout, seqlen=512, show_progress=False, scored=scored)))
        print(rows[-1], flush=True)
        del model
    table = pd.DataFrame(rows)
    table["ppl"] = table["ppl"].round(3)
    print(table.to_markdown(index=False))
    print(f"total {time.perf_counter() - start:.0f} s, threads {args.threads}, calibration {args.nsamples} x {args.seqlen}, "
          f"LayerIF windows {base['layerif_samples']}, held-out {args.ppl_tokens} tokens")


if __name__ == "__main__":
    main()
