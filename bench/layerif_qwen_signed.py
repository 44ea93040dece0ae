"""Rank correlation of the kit's per-module LayerIF scores with layerif-block's *unclamped* block influences.

layerif-block sums only positive (harmful) DataInf influences of its 32 x 32 sketches; on the embedded Qwen2.5 with
2 + 2 GSM8K windows those sums are 0 in every block, so its scores are constant and have no rank. This script
captures its per-sample sketch influences and correlates their per-block totals (generation sign: positive =
helpful) with the per-module positive sums that `bench/layerif_qwen.py` saved (default
/tmp/layerif/qwen_scores.pkl, the authors' pickle format). Usage, after that script with --layerif-samples 4:
``PYTHONPATH=$PWD .venv/bin/python bench/layerif_qwen_signed.py [scores.pkl]``
"""
import pickle
import sys

import torch
from scipy.stats import spearmanr
import tts_prune
from tts_prune.pruning import allocation
from tts_prune.pruning.layerif import layerif_windows, positive_sums
from tts_prune.study import notebook
torch.set_num_threads(1)
model, tok = tts_prune.load_model("qwen2.5-coder-0.5b-instruct", dtype="float32", device="cpu")
ids = notebook.calibration_ids(tok, "gsm8k", 8, 128)
cfg = tts_prune.PruneConfig(method="wanda", sparsity=0.2, allocation="layerif", nsamples=8, seqlen=128, layerif_samples=4)
train, val = layerif_windows(ids, cfg, tok)
raw = []
orig = allocation.datainf_influence
allocation.datainf_influence = lambda g, v, damping=0.1: raw.append(orig(g, v, damping)) or raw[-1]
allocation.layerif_scores(model, train, validation_ids=val, seed=0, show_progress=False)
records = pickle.load(open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/layerif/qwen_scores.pkl", "rb"))
L = len(raw)
sums = positive_sums({r["sample_id"]: r["scores"] for r in records}, L)
signed_mod = [sum(r["scores"][f"layer_{i}_{k}"] for r in records for k in ("attention", "mlp")) for i in range(L)]
block_signed = [float(-x.sum()) for x in raw]            # block sketches, generation sign (positive: helpful)
block_helpful_pos = [float((-x).clamp_min(0).sum()) for x in raw]
block_harmful_pos = [float(x.clamp_min(0).sum()) for x in raw]
print("block harmful positive sums (layerif-block's scores):", [round(x, 3) for x in block_harmful_pos])
for name, a in [("attention positive sums", sums["attention"]), ("MLP positive sums", sums["mlp"]),
                ("attention+MLP positive sums", sums["attention"] + sums["mlp"]), ("signed module total", signed_mod)]:
    print(f"{name}: vs block signed (helpful sign) {spearmanr(a, block_signed).statistic:.3f}; "
          f"vs block helpful-positive sums {spearmanr(a, block_helpful_pos).statistic:.3f}")
