"""Layer-wise sparsity allocation: mean constraint, direction of each signal, DataInf closed form."""
import pytest
import torch

from tests.conftest import tiny_model
from tts_prune import ALLOCATORS, PruneConfig, activation_profile, allocate, prune
from tts_prune.pruning.allocation import alpha_per_layer, datainf_influence, layer_weights, linear_map, rebalance


def _ids(n=4, seqlen=24, seed=0):
    return torch.randint(0, 128, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _weighted_mean(ratios, weights):
    return sum(r * w for r, w in zip(ratios, weights)) / sum(weights)


def test_registry_names():
    assert set(ALLOCATORS) >= {"uniform", "owl", "alphapruning", "layerif", "layerif-block", "manual"}


def test_rebalance_and_linear_map():
    ratios = rebalance([0.1, 0.5, 0.9, 0.95], [1, 2, 3, 4], 0.6)
    assert _weighted_mean(ratios, [1, 2, 3, 4]) == pytest.approx(0.6, abs=1e-9)
    assert all(0 <= r < 1 for r in ratios)
    assert linear_map([3.0, 1.0, 2.0], 0.1, 0.3) == pytest.approx([0.3, 0.1, 0.2])


@pytest.mark.parametrize("allocation", ["owl", "alphapruning", "layerif", "layerif-block"])
def test_weighted_mean_equals_target(allocation):
    model = tiny_model("phi3")  # fused qkv: blocks of one model all the same size, but linears differ
    config = PruneConfig(method="wanda", sparsity=0.3, allocation=allocation, owl_lambda=0.1)
    ratios = allocate(model, None, config, _ids(), show_progress=False)
    assert len(ratios) == 3 and len(set(round(r, 6) for r in ratios)) > 1
    assert _weighted_mean(ratios, layer_weights(model)) == pytest.approx(0.3, abs=1e-3)


def test_owl_gives_lower_sparsity_to_blocks_with_more_outliers():
    model, ids = tiny_model("llama"), _ids()
    profile = activation_profile(model, calibration=ids, owl_m=5.0, show_progress=False)
    outliers = profile.groupby("layer")["layer_outlier_ratio"].first().tolist()
    # Independent recomputation of OWL's block outlier ratio for block 0 from the dense model's activations.
    captured = {}
    block = model.model.layers[0]
    handles = [m.register_forward_hook(lambda m_, a, o, n=n: captured.__setitem__(n, a[0].reshape(-1, a[0].shape[-1])))
               for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(input_ids=ids)
    for h in handles:
        h.remove()
    scores = torch.cat([(m.weight.abs() * captured[n].norm(dim=0)).reshape(-1)
                        for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)])
    assert outliers[0] == pytest.approx(float((scores > 5 * scores.mean()).float().mean()), rel=1e-5)
    ratios = allocate(model, None, PruneConfig(method="wanda", sparsity=0.3, allocation="owl", owl_lambda=0.1), ids,
                      show_progress=False)
    order_outliers = sorted(range(3), key=lambda i: outliers[i])
    order_sparsity = sorted(range(3), key=lambda i: -ratios[i])
    assert order_outliers == order_sparsity
    assert max(ratios) - min(ratios) == pytest.approx(0.2, abs=1e-6)  # spread = 2 lambda
    assert _weighted_mean(ratios, layer_weights(model)) == pytest.approx(0.3, abs=1e-9)


def test_alphapruning_prunes_higher_alpha_more():
    model = tiny_model("qwen2")
    alphas = alpha_per_layer(model)
    ratios = allocate(model, None, PruneConfig(method="magnitude", sparsity=0.4, allocation="alphapruning"))
    assert sorted(range(3), key=lambda i: alphas[i]) == sorted(range(3), key=lambda i: ratios[i])


def test_datainf_closed_form_matches_explicit_matrix():
    g = torch.randn(5, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lam = 0.1 * float((g * g).sum(1).mean()) / 12
    inverse = sum(torch.eye(12, dtype=torch.float64) - torch.outer(gi, gi) / (lam + gi @ gi) for gi in g) / (5 * lam)
    torch.testing.assert_close(datainf_influence(g, v), -(g @ inverse @ v))


def test_pruning_with_owl_hits_the_global_target():
    model = tiny_model("qwen3")
    result = prune(model, None, PruneConfig(method="wanda", sparsity=0.25, allocation="owl", owl_lambda=0.1),
                   calibration=_ids(), show_progress=False)
    assert result.layers["target_sparsity"].nunique() == 3
    assert abs(result.global_sparsity - 0.25) < 1 / 64  # per-row floor on 64-wide inputs


def test_bad_allocation_configs():
    # The old rule (owl_lambda <= sparsity, "else negative sparsity") was false both ways; the reference
    # clips non-positive ratios to 0.01, so only a block reaching sparsity 1 is refused.
    PruneConfig(method="wanda", sparsity=0.1, allocation="owl", owl_lambda=0.2)
    with pytest.raises(ValueError, match=r"owl_lambda=0.3 .*sparsity \+ 2 x owl_lambda < 1.*owl_lambda < 0.25"):
        PruneConfig(method="wanda", sparsity=0.5, allocation="owl", owl_lambda=0.3)
    with pytest.raises(ValueError, match=r"sparsity=1.0 .*\[0, 1\)"):
        PruneConfig(method="wanda", sparsity=1.0)
    with pytest.raises(ValueError, match="allocation='bogus'"):
        PruneConfig(method="wanda", sparsity=0.1, allocation="bogus")
    config = PruneConfig(method="magnitude", sparsity=0.2, layer_sparsities=[0.1, 0.2, 0.3])
    assert config.allocation == "manual"
    assert allocate(tiny_model("llama"), None, config) == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="has 2 entries but the model has 3"):
        allocate(tiny_model("llama"), None, PruneConfig(method="magnitude", sparsity=0.2, layer_sparsities=[0.1, 0.3]))
    with pytest.raises(ValueError, match="weighted mean 0.3000 but sparsity=0.2"):
        allocate(tiny_model("llama"), None, PruneConfig(method="magnitude", sparsity=0.2, layer_sparsities=[0.3] * 3))


def _owl_reference(outlier_ratios, sparsity, lamda):
    """luuyin/OWL lib/prune_all.py (prune_wanda_outlier), transcribed with numpy: the layer ratio is the
    keep ratio; each block then uses 1 - ratio, with non-positive values replaced by 0.01."""
    import numpy as np

    all_layer_ratio = np.array(outlier_ratios)
    all_layer_ratio = ((all_layer_ratio - all_layer_ratio.min())
                       * (1 / (all_layer_ratio.max() - all_layer_ratio.min()) * lamda * 2))
    all_layer_ratio = all_layer_ratio - np.mean(all_layer_ratio) + (1 - sparsity)
    out = []
    for i in range(len(all_layer_ratio)):
        layer_sparsity_ratio = 1 - all_layer_ratio[i]
        if layer_sparsity_ratio <= 0:
            layer_sparsity_ratio = 0.01
        out.append(float(layer_sparsity_ratio))
    return out


@pytest.mark.parametrize("sparsity,lam,seed", [(0.5, 0.08, 0), (0.2, 0.08, 1), (0.1, 0.2, 2), (0.05, 0.3, 3)])
def test_owl_ratios_equal_the_reference_formula(sparsity, lam, seed):
    from tts_prune.pruning.allocation import owl_ratios

    scores = torch.rand(28, generator=torch.Generator().manual_seed(seed)).tolist()
    scores[seed] *= 8  # one outlier-heavy block pushes the others' sparsity down, below zero for small s
    ours = owl_ratios(scores, sparsity, lam)
    assert ours == pytest.approx(_owl_reference(scores, sparsity, lam), abs=1e-12)
    if sparsity < lam:
        assert 0.01 in ours  # clipped, and not rebalanced: the mean now exceeds the target
        assert sum(ours) / len(ours) > sparsity
    rebalanced = owl_ratios(scores, sparsity, lam, clip="rebalance", weights=[1.0] * 28)
    assert sum(rebalanced) / 28 == pytest.approx(sparsity, abs=1e-9)


def test_owl_allocation_uses_reference_clipping_and_reports_target():
    model = tiny_model("llama")
    ids = _ids()
    profile = activation_profile(model, calibration=ids, show_progress=False)
    outliers = profile.groupby("layer")["layer_outlier_ratio"].first().tolist()
    config = PruneConfig(method="wanda", sparsity=0.1, allocation="owl", owl_lambda=0.2)
    result = prune(model, None, config, calibration=ids, show_progress=False)
    assert result.layers["target_sparsity"].tolist() == pytest.approx(_owl_reference(outliers, 0.1, 0.2), abs=1e-12)
    weights = layer_weights(tiny_model("llama"))
    assert result.target_global_sparsity == pytest.approx(_weighted_mean(result.layers["target_sparsity"], weights))
    assert abs(result.global_sparsity - result.target_global_sparsity) < 1e-4  # exact rounding per matrix


def _brute_force_alpha_peak(eigs):
    """Independent float64 brute force: histogram peak with numpy, every xmin in the reference window,
    Hill alpha and KS distance for each, smallest distance wins (first on ties; alpha <= 1 -> D = 1)."""
    import numpy as np

    eigs = np.sort(np.asarray(eigs, dtype=np.float64))
    counts, edges = np.histogram(np.log10(eigs), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    low, high = np.log10(0.95 * peak), 1.5 * peak
    best = (1.0, 0.0)
    for i, xmin in enumerate(eigs[:-1]):
        if not low <= xmin <= high:
            continue
        tail = eigs[i:]
        n = len(tail)
        alpha = 1 + n / np.sum(np.log(tail / xmin))
        d = np.max(np.abs(1 - (tail / xmin) ** (1 - alpha) - np.arange(n) / n)) if alpha > 1 else 1.0
        if d < best[0]:
            best = (d, alpha)
    return best[1]


def test_alpha_peak_matches_a_brute_force_ks_search():
    from tts_prune.pruning.kernels import alpha_peak, esd

    g = torch.Generator().manual_seed(0)
    # Synthetic spectrum: a Pareto tail (alpha 3) on top of a bulk, as W = U diag(sqrt(lambda)) V^T.
    bulk = 1 + 0.5 * torch.rand(300, generator=g, dtype=torch.float64)
    tail = (1 - torch.rand(100, generator=g, dtype=torch.float64)) ** (-1 / 2.0) * 1.6
    lam = torch.cat([bulk, tail])
    u, _ = torch.linalg.qr(torch.randn(500, 400, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(400, 400, generator=g, dtype=torch.float64))
    w = (u * lam.sqrt()) @ v.t()
    eigs = esd(w)
    assert torch.allclose(eigs.double(), torch.sort(lam).values, rtol=1e-4)
    expected = _brute_force_alpha_peak(eigs.double().numpy())
    assert alpha_peak(w) == pytest.approx(expected, rel=1e-3)
    assert 2.0 < alpha_peak(w) < 4.5  # the planted tail exponent is 3


def test_reference_epsilons_per_method():
    assert PruneConfig(method="wanda", sparsity=0.2, allocation="layerif").layerif_eps == 0.1
    assert PruneConfig(method="sparsegpt", sparsity=0.2, allocation="layerif").layerif_eps == 0.1
    assert PruneConfig(method="magnitude", sparsity=0.2, allocation="layerif").layerif_eps == 0.3
    assert PruneConfig(method="wanda", sparsity=0.2, allocation="alphapruning").alpha_eps == 0.2
    assert PruneConfig(method="magnitude", sparsity=0.2, alpha_eps=0.05).alpha_eps == 0.05
    with pytest.raises(ValueError, match="alpha_estimator='hill' is unknown"):
        PruneConfig(method="wanda", sparsity=0.2, alpha_estimator="hill")


def test_alphapruning_eps_and_estimator_options():
    model = tiny_model("qwen2")
    for estimator in ("peak", "median"):
        config = PruneConfig(method="magnitude", sparsity=0.4, allocation="alphapruning", alpha_estimator=estimator,
                             alpha_eps=0.25)
        alphas = alpha_per_layer(model, estimator)
        ratios = allocate(model, None, config)
        # linear in [s(1-eps), s(1+eps)], rescaled to mean s: the spread is 2 eps s x (s / mapped mean)
        mapped = linear_map(alphas, 0.4 * 0.75, 0.4 * 1.25)
        scale = 0.4 * sum(layer_weights(model)) / sum(m * w for m, w in zip(mapped, layer_weights(model)))
        assert ratios == pytest.approx([m * scale for m in mapped], abs=1e-9)


def test_layerif_validation_ids_are_the_second_half():
    from tts_prune.pruning.allocation import layerif_scores

    model, ids = tiny_model("llama"), _ids(n=6)
    split = layerif_scores(model, ids, show_progress=False)                  # train = 3 windows, validation = 3
    separate = layerif_scores(model, ids[:3], show_progress=False, validation_ids=ids[3:])
    assert separate == pytest.approx(split, rel=1e-9)
    other = layerif_scores(model, ids[:3], show_progress=False, validation_ids=_ids(n=2, seed=9))
    assert other != pytest.approx(split, rel=1e-3)


def test_layerif_validation_source_gives_the_validation_windows(tmp_path):
    from tts_prune import calibration_batches
    from tts_prune.pruning.allocation import layerif_scores

    class CharTokenizer:
        eos_token_id = 127

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) % 120 for c in text]}

    path = tmp_path / "train_problems.txt"
    path.write_text("".join(chr(97 + i % 26) for i in range(400)), encoding="utf-8")
    model, ids, tok = tiny_model("llama"), _ids(n=4, seqlen=24), CharTokenizer()
    config = PruneConfig(method="wanda", sparsity=0.3, allocation="layerif-block", layerif_samples=4,
                         layerif_validation=str(path))
    ratios = allocate(model, tok, config, ids, show_progress=False)
    validation = calibration_batches(tok, str(path), 2, 24, seed=1)  # layerif_samples // 2 windows, seed + 1
    scores = layerif_scores(model, ids[:2], show_progress=False, validation_ids=validation)
    mapped = linear_map(scores, 0.3 * 0.9, 0.3 * 1.1)  # Wanda: eps 0.1
    assert ratios == pytest.approx(rebalance(mapped, layer_weights(model), 0.3, scale=True), abs=1e-12)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        allocate(model, None, config, ids, show_progress=False)
