"""OWL as the authors of arXiv 2604.25098 ran it (OCM-7898/TTS-Pruning, wanda/lib/prune.py, `--Hyper_m 7
--Lamda 0.08`): outlier ratios from the Wanda scores of the dense model on calibration data, pooled over all the
block's linears; magnitude + OWL then prunes each matrix by |W| (top-k of the whole matrix), Wanda + OWL per row.
Held against a transcription of their `prune_mag_outlier` / `prune_wanda_outlier` on a tiny model."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import tiny_model
from tts_prune import PruneConfig, prune
from tts_prune.models.layers import decoder_layers
from tts_prune.pruning.allocation import owl_ratios


def _ids(n=4, seqlen=24, seed=0):
    return torch.randint(0, 128, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _with_outliers(model):
    # a few input features of the first block's linears carry large weights: that block has more outliers
    with torch.no_grad():
        for module in decoder_layers(model)[0].modules():
            if isinstance(module, nn.Linear):
                module.weight[:, :3] *= 25
    return model


def _their_scaler_rows(model, ids):
    """WrappedGPT.add_batch over one sample at a time: the running mean over samples of ||x_j||^2 summed over
    the sample's tokens, for every nn.Linear of every block (the dense model: their outlier pass prunes nothing)."""
    rows, counts, handles = {}, {}, []
    for i, block in enumerate(decoder_layers(model)):
        for name, module in block.named_modules():
            if type(module) is nn.Linear:
                key = (i, name)
                rows[key], counts[key] = torch.zeros(module.weight.shape[1]), 0

                def add(_m, args, _out, key=key):
                    inp = args[0].reshape(-1, args[0].shape[-1]).t().float()
                    rows[key] *= counts[key] / (counts[key] + 1)
                    counts[key] += 1
                    rows[key] += torch.norm(inp, p=2, dim=1) ** 2 / counts[key]
                handles.append(module.register_forward_hook(add))
    with torch.no_grad():
        for sample in ids:
            model(input_ids=sample.unsqueeze(0))
    for h in handles:
        h.remove()
    return rows


def _their_layer_sparsities(model, ids, m, lamda, sparsity):
    """Their outlier ratios (check_outlier_mean, in percent) and the mapping, unclipped: 1 - keep ratio."""
    rows = _their_scaler_rows(model, ids)
    ratios = []
    for i, block in enumerate(decoder_layers(model)):
        metrics = [torch.abs(mod.weight.data) * torch.sqrt(rows[(i, name)].reshape(1, -1))
                   for name, mod in block.named_modules() if type(mod) is nn.Linear]
        w = torch.cat([torch.flatten(x) for x in metrics])
        ratios.append(float((w > torch.mean(w) * m).sum().item()) / w.numel() * 100)
    r = np.array(ratios)
    r = (r - r.min()) * (1 / (r.max() - r.min()) * lamda * 2)
    r = r - np.mean(r) + (1 - sparsity)
    return ratios, [1.0 - x for x in r]


def _their_magnitude_owl(model, layer_sparsity):
    # prune_mag_outlier's pruning loop: per matrix, the int(numel x s) smallest |W| by topk when positive
    for i, block in enumerate(decoder_layers(model)):
        for _name, module in block.named_modules():
            if type(module) is nn.Linear:
                W = module.weight.data
                k = int(W.numel() * layer_sparsity[i])
                mask = torch.zeros_like(W, dtype=torch.bool)
                if k > 0:
                    mask.view(-1)[torch.topk(W.abs().view(-1), k, largest=False).indices] = True
                W[mask] = 0


@pytest.mark.parametrize("sparsity", [0.1, 0.2])
def test_magnitude_owl_equals_the_authors_prune_mag_outlier(sparsity):
    model = _with_outliers(tiny_model("llama"))
    ids = _ids()
    ratios, targets = _their_layer_sparsities(model, ids, 7, 0.08, sparsity)
    assert len(set(ratios)) == 3, ratios  # distinct outlier ratios: the mapping is exercised
    theirs = copy.deepcopy(model)
    _their_magnitude_owl(theirs, targets)
    config = PruneConfig(method="magnitude", sparsity=sparsity, allocation="owl", owl_m=7, owl_lambda=0.08,
                         rounding="floor")
    result = prune(model, None, config, calibration=ids, show_progress=False)
    assert result.layers["target_sparsity"].tolist() == pytest.approx([max(t, 0.0) for t in targets], abs=1e-9)
    for ours, ref in zip(model.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(ours == 0, ref == 0)


def test_wanda_owl_allocation_equals_the_authors_prune_wanda_outlier():
    model = _with_outliers(tiny_model("qwen2"))
    ids = _ids(seed=1)
    _, targets = _their_layer_sparsities(model, ids, 7, 0.08, 0.1)
    config = PruneConfig(method="wanda", sparsity=0.1, allocation="owl", owl_m=7, owl_lambda=0.08, rounding="floor")
    result = prune(model, None, config, calibration=ids, show_progress=False)
    # prune_wanda_outlier: a block whose sparsity is <= 0 gets 0.01
    assert result.layers["target_sparsity"].tolist() == pytest.approx([0.01 if t <= 0 else t for t in targets], abs=1e-9)


def test_non_positive_owl_sparsity_per_method():
    ratios = [30.0, 1.0, 2.0, 1.5]  # one outlier-heavy block: s + mean - 2 lambda < 0 for it at s = 0.1
    mapped = np.array(ratios)
    mapped = (mapped - mapped.min()) / (mapped.max() - mapped.min()) * 0.16
    raw = [0.1 + mapped.mean() - x for x in mapped]
    assert raw[0] < 0
    assert owl_ratios(ratios, 0.1, 0.08, clip="zero") == pytest.approx([0.0, *raw[1:]], abs=1e-12)
    assert owl_ratios(ratios, 0.1, 0.08, clip="reference") == pytest.approx([0.01, *raw[1:]], abs=1e-12)
