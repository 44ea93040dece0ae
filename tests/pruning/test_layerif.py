"""LayerIF as the paper ran it: against a transcription of the authors' functions, per-matrix targets through
the driver, error cases, and the computed influence against a brute-force DataInf on explicit matrices."""
import math
import pickle

import numpy as np
import pytest
import torch
import transformers
from scipy.signal import savgol_filter

from tests.conftest import _COMMON, tiny_model
from tts_prune import PruneConfig, allocate, model_fingerprint, prune, save_pruned
from tts_prune.pruning.influence import module_influence


# --- transcription of OCM-7898/TTS-Pruning wanda/lib/influence_helper.py (read 2026-12-01), printing dropped ---
def ref_positive_influence_aggregation(scores_dict, num_layer):
    attn_sum, mlp_sum = np.zeros(num_layer), np.zeros(num_layer)
    for _, scores in scores_dict.items():
        for layer_idx in range(num_layer):
            attn_score = scores[f"layer_{layer_idx}_attention"]
            mlp_score = scores[f"layer_{layer_idx}_mlp"]
            if attn_score > 0:
                attn_sum[layer_idx] += attn_score
            if mlp_score > 0:
                mlp_sum[layer_idx] += mlp_score
    return attn_sum, mlp_sum


def ref_normalize_and_smooth(scores, window_length=5, polyorder=2):
    abs_scores = np.abs(scores)
    s_min, s_max = abs_scores.min(), abs_scores.max()
    normalized = (abs_scores - s_min) / (s_max - s_min) if s_max - s_min > 0 else np.zeros_like(abs_scores)
    if len(normalized) >= window_length and window_length % 2 == 1:
        smoothed = savgol_filter(normalized, window_length=window_length, polyorder=polyorder)
    else:
        smoothed = normalized
    return np.clip(smoothed, 0, 1)


def ref_influence_normalize_smooth(attn_positive_sum, mlp_positive_sum):
    return ref_normalize_and_smooth(attn_positive_sum), ref_normalize_and_smooth(mlp_positive_sum)


def ref_allocate_layer_sparsity(scores, layer_dims, target_sparsity=0.20, e1=0.05, e2=0.40, eps=1e-8):
    scores, layer_dims = np.asarray(scores), np.asarray(layer_dims)
    s_norm = (scores - scores.min()) / (scores.max() - scores.min() + eps)
    p_hat = (1.0 - s_norm) * (e2 - e1) + e1
    eta = (target_sparsity * layer_dims.sum()) / (np.sum(p_hat * layer_dims) + eps)
    return np.clip(eta * p_hat, 0.0, 1.0)


def ref_allocation(model, files, sparsity):
    """Their prune_wanda_influence's allocation: concatenated pickles, dims from q/k/v/o and gate/up/down."""
    all_scores = []
    for filename in files:
        with open(filename, "rb") as f:
            all_scores.extend(pickle.load(f))
    scores_dict = {item["sample_id"]: item["scores"] for item in all_scores}
    layers = model.model.layers
    attn_sum, mlp_sum = ref_positive_influence_aggregation(scores_dict, len(layers))
    attn, mlp = ref_influence_normalize_smooth(attn_sum, mlp_sum)
    attn_dims = np.array([sum(getattr(l.self_attn, n).weight.numel() for n in ["q_proj", "k_proj", "v_proj", "o_proj"])
                          for l in layers])
    mlp_dims = np.array([sum(getattr(l.mlp, n).weight.numel() for n in ["gate_proj", "up_proj", "down_proj"])
                         for l in layers])
    return (ref_allocate_layer_sparsity(attn, attn_dims, target_sparsity=sparsity),
            ref_allocate_layer_sparsity(mlp, mlp_dims, target_sparsity=sparsity))


# ------------------------------------------------------------------------------------------ helpers
def llama(layers, seed=0):
    torch.manual_seed(seed)
    cfg = dict(_COMMON, num_hidden_layers=layers)
    cfg["intermediate_size"] = 96  # attention and MLP sizes differ, so the two weightings differ
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).eval()


def write_pickles(tmp_path, layers, samples=(7, 5), seed=0, transform=None):
    """Synthetic scores in the authors' format, split over files; some negative, so positivity matters."""
    rng, start, paths = np.random.default_rng(seed), 0, []
    for part, n in enumerate(samples):
        batch = []
        for sid in range(start, start + n):
            scores = {f"layer_{i}_{kind}": float(rng.normal(0.3 * i if kind == "mlp" else 1.0 / (i + 1), 1.0))
                      for i in range(layers) for kind in ("attention", "mlp")}
            batch.append({"sample_id": sid, "scores": transform(scores) if transform else scores})
        start += n
        path = tmp_path / f"all_influence_scores_{100 * (part + 1)}.pkl"
        path.write_bytes(pickle.dumps(batch))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("layers", [7, 3])  # 7: Savitzky-Golay applies; 3: shorter than the window, skipped
@pytest.mark.parametrize("sparsity", [0.1, 0.2, 0.5])
def test_pickle_allocation_equals_their_functions(tmp_path, layers, sparsity):
    model = llama(layers)
    files = write_pickles(tmp_path, layers, seed=layers)
    config = PruneConfig(method="wanda", sparsity=sparsity, allocation="layerif",
                         layerif_scores=str(tmp_path / "all_influence_scores_*.pkl"))
    ratios = allocate(model, None, config, show_progress=False)
    attn, mlp = ref_allocation(model, files, sparsity)
    assert np.abs(np.array(ratios.by_kind["attention"]) - attn).max() < 1e-9
    assert np.abs(np.array(ratios.by_kind["mlp"]) - mlp).max() < 1e-9
    assert not np.allclose(attn, mlp) and np.ptp(attn) > 0.01           # attention and MLP really differ
    assert [f["path"] for f in ratios.meta["files"]] == [str(f) for f in files]
    assert ratios.meta["samples"] == 12 and len(ratios.meta["files"][0]["sha256"]) == 64
    assert ("none" in ratios.meta["smoothing"]) == (layers < 5)
    assert ratios.per_linear[0]["self_attn.k_proj"] == attn[0] and ratios.per_linear[0]["mlp.down_proj"] == mlp[0]
    sizes = [sum(p.numel() for n, p in b.named_parameters() if n.endswith("proj.weight")) for b in model.model.layers]
    mean = sum(r * w for r, w in zip(ratios, sizes)) / sum(sizes)
    if max(attn.max(), mlp.max()) < 1:
        assert mean == pytest.approx(sparsity, abs=1e-6)
    else:  # eta x p_hat > 1 is clipped to 1 without rebalancing, as their code: the mean falls short
        assert mean < sparsity and ratios.meta["clipped"]


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_pruned_matrices_follow_their_module_sparsity(tmp_path, method):
    model = llama(5)
    files = write_pickles(tmp_path, 5)
    attn, mlp = ref_allocation(model, files, 0.3)
    config = PruneConfig(method=method, sparsity=0.3, allocation="layerif", layerif_scores=str(files[0].parent / "*.pkl"),
                         rounding="floor", nsamples=2, seqlen=16)
    assert config.wanda_scope == ("matrix" if method == "wanda" else "row") and config.magnitude_scope == "matrix"
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1))
    result = prune(model, None, config, ids, show_progress=False)
    for i, block in enumerate(model.model.layers):
        for name, module in block.named_modules():
            if isinstance(module, torch.nn.Linear):
                target = attn[i] if name.startswith("self_attn") else mlp[i]
                zeros = int((module.weight == 0).sum())
                assert zeros == int(module.weight.numel() * target), (i, name)   # their int(numel x s) per matrix
    layers = result.layers
    assert np.abs(layers["attention_achieved_sparsity"] - attn).max() < 1e-3
    assert np.abs(layers["mlp_achieved_sparsity"] - mlp).max() < 1e-3
    assert result.allocation_meta["source"] == "pickle"
    out = save_pruned(model, None, result, tmp_path / "pruned")
    recipe = (out / "pruning_recipe.json").read_text()
    assert files[0].name in recipe and result.allocation_meta["files"][0]["sha256"] in recipe
    assert "sha256" in (out / "README.md").read_text()


def test_wanda_matrix_scope_ranks_the_whole_matrix():
    from tts_prune.pruning.kernels import wanda_mask

    w, norms = torch.randn(6, 10, generator=torch.Generator().manual_seed(0)), torch.rand(10) + 0.1
    mask = wanda_mask(w, norms, 0.3, rounding="floor", scope="matrix")
    score = (w.abs() * norms.sqrt()).flatten()
    assert set(mask.flatten().nonzero().flatten().tolist()) == set(torch.topk(score, 18, largest=False).indices.tolist())


def test_bad_pickles_are_clear_errors(tmp_path):
    model = llama(3)
    def config(pattern, **kw):
        return PruneConfig(method="magnitude", sparsity=0.2, allocation="layerif", layerif_scores=str(pattern), **kw)

    for folder in ("drop", "wide", "nan"):
        (tmp_path / folder).mkdir()
    files = write_pickles(tmp_path / "drop", 3, transform=lambda s: {k: v for k, v in s.items() if k != "layer_1_mlp"})
    with pytest.raises(ValueError, match=r"all_influence_scores_100\.pkl: sample 0 has no key layer_1_mlp.*3 decoder blocks"):
        allocate(model, None, config(files[0]))
    wide = write_pickles(tmp_path / "wide", 4)
    with pytest.raises(ValueError, match=r"extra key layer_3_attention.*cover 4 layers, the model has 3.*layer_influence_qwen3"):
        allocate(model, None, config(wide[0]))
    nan = write_pickles(tmp_path / "nan", 3, transform=lambda s: {**s, "layer_2_attention": math.nan})
    with pytest.raises(ValueError, match="non-finite score at layer_2_attention"):
        allocate(model, None, config(nan[0]))
    with pytest.raises(FileNotFoundError, match="names no file"):
        allocate(model, None, config(tmp_path / "none_*.pkl"))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([{"sample_id": 0, "scores": {"x": torch.nn.Identity()}}]))
    with pytest.raises(ValueError, match="not a plain pickle"):
        allocate(model, None, config(evil))
    with pytest.raises(ValueError, match="layerif_scores=.* with allocation='owl'"):
        PruneConfig(method="wanda", sparsity=0.2, allocation="owl", layerif_scores="x.pkl")


def test_numpy_scalars_in_pickles_load(tmp_path):
    model = llama(3)
    files = write_pickles(tmp_path, 3, transform=lambda s: {k: np.float64(v) for k, v in s.items()})
    ratios = allocate(model, None, PruneConfig(method="magnitude", sparsity=0.2, allocation="layerif",
                                               layerif_scores=str(files[1])))
    assert np.abs(np.array(ratios.by_kind["mlp"]) - ref_allocation(model, files[1:], 0.2)[1]).max() < 1e-9


def test_degenerate_scores_error_or_recorded_fallback(tmp_path):
    model = llama(3)
    files = write_pickles(tmp_path, 3, transform=lambda s: {k: (-1.0 if k.endswith("attention") else v) for k, v in s.items()})
    config = dict(method="magnitude", sparsity=0.2, allocation="layerif", layerif_scores=str(files[0]))
    with pytest.raises(ValueError, match=r"attention scores are degenerate.*\[0\.0, 0\.0, 0\.0\].*layerif_on_degenerate"):
        allocate(model, None, PruneConfig(**config))
    with pytest.warns(UserWarning, match="falling back"):
        ratios = allocate(model, None, PruneConfig(**config, layerif_on_degenerate="uniform"))
    assert ratios.by_kind["attention"] == [0.2] * 3 and np.ptp(ratios.by_kind["mlp"]) > 0
    assert ratios.meta["fallback"] == {"attention": "uniform: degenerate scores"}


def _brute_force_influence(model, train, validation, damping=0.1):
    """Per-sample full gradients, then DataInf with explicit (D x D) matrices, per weight matrix."""
    def grads(ids):
        model.zero_grad()
        model(input_ids=ids.unsqueeze(0), labels=ids.unsqueeze(0)).loss.backward()
        return {n: p.grad.detach().flatten().clone() for n, p in model.named_parameters() if n.endswith("proj.weight")}

    tr = [grads(x) for x in train]
    va = [grads(x) for x in validation]
    out = torch.zeros(len(train), len(model.model.layers), 2, dtype=torch.float64)
    for name in tr[0]:
        g = torch.stack([t[name] for t in tr])                       # (n, D)
        v = torch.stack([t[name] for t in va]).mean(0)               # (D,)
        n, d = g.shape
        lam = damping * float((g * g).mean(1).mean())
        inverse = sum(torch.eye(d, dtype=g.dtype) - torch.outer(gi, gi) / (lam + gi @ gi) for gi in g) / (n * lam)
        influence = g @ (inverse @ v)                                # (n,) DataInf's generation-engine sign
        layer = int(name.split(".")[2])
        out[:, layer, 0 if ".self_attn." in name else 1] += influence
    return out


@pytest.mark.parametrize("layers_per_pass", [None, 1])
def test_computed_influence_equals_brute_force_datainf(layers_per_pass):
    torch.manual_seed(0)
    cfg = dict(_COMMON, num_hidden_layers=2, hidden_size=16, intermediate_size=24, num_attention_heads=2,
               num_key_value_heads=1, vocab_size=40)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).double().eval()
    ids = torch.randint(0, 40, (5, 12), generator=torch.Generator().manual_seed(3))
    records = module_influence(model, ids[:3], ids[3:], layers_per_pass=layers_per_pass, show_progress=False)
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())
    expected = _brute_force_influence(model, ids[:3], ids[3:])
    got = torch.tensor([[[r["scores"][f"layer_{l}_{k}"] for k in ("attention", "mlp")] for l in range(2)] for r in records],
                       dtype=torch.float64)
    assert [r["sample_id"] for r in records] == [0, 1, 2]
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-10 * float(expected.abs().max()))


def test_computed_layerif_on_a_three_block_model_is_not_uniform(tmp_path):
    """The toy reasoner has 3 blocks: its LayerIF targets must differ from uniform, and so must the weights."""
    ids = torch.randint(0, 128, (8, 24), generator=torch.Generator().manual_seed(0))
    base = tiny_model("qwen3")
    uniform = tiny_model("qwen3")
    prune(uniform, None, PruneConfig(method="magnitude", sparsity=0.2), ids, show_progress=False)
    config = PruneConfig(method="magnitude", sparsity=0.2, allocation="layerif", layerif_samples=8)
    result = prune(base, None, config, ids, show_progress=False)
    assert np.ptp(result.layers["attention_target_sparsity"]) > 0.01 and np.ptp(result.layers["mlp_target_sparsity"]) > 0.01
    assert result.global_sparsity == pytest.approx(0.2, abs=2e-3)
    assert model_fingerprint(base) != model_fingerprint(uniform)
    meta = result.allocation_meta
    assert meta["source"] == "computed" and meta["train"] == 4 and meta["validation"] == 4 and len(meta["records"]) == 4
    assert "3 blocks < window 5" in meta["smoothing"]


def test_cli_knows_both_layerifs_and_the_scores_option():
    import argparse

    from tts_prune.pruning.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--method", "wanda", "--sparsity", "0.2", "--allocation", "layerif", "--out", "x",
                              "--layerif-scores", "scores/*.pkl", "--layerif-on-degenerate", "uniform"])
    assert (args.allocation, args.layerif_scores, args.layerif_on_degenerate, args.wanda_scope) == \
        ("layerif", "scores/*.pkl", "uniform", "auto")
    assert parser.parse_args(["--method", "wanda", "--sparsity", "0.2", "--allocation", "layerif-block",
                              "--out", "x"]).allocation == "layerif-block"


@pytest.mark.parametrize("field, value, message", [
    ("layerif_e1", 0.5, r"layerif_e1=0.5, layerif_e2=0.4.*0 <= e1 < e2 <= 1"),
    ("layerif_on_degenerate", "ignore", r"layerif_on_degenerate='ignore' is unknown.*\['error', 'uniform'\]"),
    ("layerif_layers_per_pass", -1, r"layerif_layers_per_pass=-1.*integer >= 0"),
    ("wanda_scope", "column", r"wanda_scope='column' is unknown"),
])
def test_layerif_config_errors_name_the_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        PruneConfig(method="wanda", sparsity=0.2, allocation="layerif", **{field: value})


def test_layerif_block_degenerate_scores_are_an_error(monkeypatch):
    from tts_prune.pruning import allocation

    monkeypatch.setattr(allocation, "layerif_scores", lambda *a, **k: [0.0, 0.0, 0.0])  # no positive influence
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    config = dict(method="wanda", sparsity=0.2, allocation="layerif-block", layerif_samples=4)
    with pytest.raises(ValueError, match="layerif-block scores are degenerate"):
        allocate(tiny_model("llama"), None, PruneConfig(**config), ids, show_progress=False)
    with pytest.warns(UserWarning, match="every block gets 0.2"):
        ratios = allocate(tiny_model("llama"), None, PruneConfig(**config, layerif_on_degenerate="uniform"), ids,
                          show_progress=False)
    assert ratios == pytest.approx([0.2] * 3)
