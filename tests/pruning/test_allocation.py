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
    assert set(ALLOCATORS) >= {"uniform", "owl", "alphapruning", "layerif", "manual"}


def test_rebalance_and_linear_map():
    ratios = rebalance([0.1, 0.5, 0.9, 0.95], [1, 2, 3, 4], 0.6)
    assert _weighted_mean(ratios, [1, 2, 3, 4]) == pytest.approx(0.6, abs=1e-9)
    assert all(0 <= r < 1 for r in ratios)
    assert linear_map([3.0, 1.0, 2.0], 0.1, 0.3) == pytest.approx([0.3, 0.1, 0.2])


@pytest.mark.parametrize("allocation", ["owl", "alphapruning", "layerif"])
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
