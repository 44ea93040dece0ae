"""ShortGPT: Block Influence, removal of the lowest-BI blocks, renumbering, generation afterwards."""
import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.conftest import tiny_model
from tts_prune import PruneConfig, block_influence, prune, save_pruned
from tts_prune.models.layers import decoder_layers
from tts_prune.pruning.shortgpt import layers_to_remove, remove_layers


def _ids(n=3, seqlen=20, seed=0):
    return torch.randint(0, 128, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _manual_bi(model, ids):
    """Independent BI: hooks record each block's input and output during one ordinary forward."""
    seen = {}
    handles = [b.register_forward_hook(lambda m, a, k, o, i=i: seen.__setitem__(i, (k.get("hidden_states", a[0] if a else None), o)),
                                       with_kwargs=True) for i, b in enumerate(decoder_layers(model))]
    with torch.no_grad():
        model(input_ids=ids)
    for h in handles:
        h.remove()
    out = []
    for i in range(len(seen)):
        h_in, h_out = seen[i]
        h_out = h_out[0] if isinstance(h_out, tuple) else h_out
        cos = torch.nn.functional.cosine_similarity(h_in, h_out, dim=-1)
        out.append(float((1 - cos).mean()))
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_block_influence_matches_manual(family):
    model, ids = tiny_model(family), _ids()
    assert block_influence(model, calibration=ids, show_progress=False) == pytest.approx(_manual_bi(model, ids), rel=1e-4)


def test_layers_to_remove_picks_lowest():
    assert layers_to_remove([0.5, 0.1, 0.3, 0.2], 0.5) == [1, 3]
    assert layers_to_remove([0.5, 0.1, 0.3, 0.2], 0.1) == []


def test_shortgpt_removes_lowest_bi_and_still_generates():
    model = tiny_model("qwen3")  # has config.layer_types
    model.config.num_hidden_layers  # noqa: B018
    dense = copy.deepcopy(model)
    ids = _ids()
    bi = _manual_bi(dense, ids)
    result = prune(model, None, PruneConfig(method="shortgpt", sparsity=0.34), calibration=ids, show_progress=False)
    lowest = min(range(3), key=lambda i: bi[i])
    assert result.removed_layers == [lowest]
    assert model.config.num_hidden_layers == 2 and len(model.config.layer_types) == 2
    assert [b.self_attn.layer_idx for b in decoder_layers(model)] == [0, 1]
    kept = [i for i in range(3) if i != lowest]
    # Manual forward through the kept dense blocks (same weights), with rotary embeddings and causal sdpa.
    with torch.no_grad():
        h = dense.model.embed_tokens(ids)
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        rotary = dense.model.rotary_emb(h, positions)
        for i in kept:
            h = dense.model.layers[i](h, attention_mask=None, position_embeddings=rotary, position_ids=positions)
        manual = dense.lm_head(dense.model.norm(h))
        torch.testing.assert_close(model(input_ids=ids).logits, manual, atol=1e-5, rtol=1e-5)
        # Generation with the KV cache must agree with recomputing everything (renumbered layer_idx).
        prompt = ids[:1, :6]
        cached = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
        uncached = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached) and cached.shape[1] == 12


def test_remove_layers_errors_and_saved_config(tmp_path):
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="keep at least one block"):
        remove_layers(copy.deepcopy(model), [0, 1, 2])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        remove_layers(copy.deepcopy(model), [5])
    result = prune(model, None, PruneConfig(method="shortgpt", sparsity=0.34), calibration=_ids(), show_progress=False)
    save_pruned(model, None, result, tmp_path / "short")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "short")
    assert reloaded.config.num_hidden_layers == 2 and len(decoder_layers(reloaded)) == 2
    assert "really is smaller" in (tmp_path / "short" / "README.md").read_text()
    assert abs(result.global_sparsity - 1 / 3) < 1e-9


def test_removed_fraction_of_decoder_parameters_is_recorded(tmp_path):
    import json

    model = tiny_model("qwen3")
    sizes = [sum(p.numel() for p in b.parameters()) for b in decoder_layers(model)]  # before removal
    result = prune(model, None, PruneConfig(method="shortgpt", sparsity=0.2), calibration=_ids(), show_progress=False)
    assert len(result.removed_layers) == 1  # round(0.2 x 3) = 1 block: 33%, not 20%
    expected = sizes[result.removed_layers[0]] / sum(sizes)
    assert result.removed_param_fraction == pytest.approx(expected)
    save_pruned(model, None, result, tmp_path / "short")
    recipe = json.loads((tmp_path / "short" / "pruning_recipe.json").read_text())
    assert recipe["removed_param_fraction"] == pytest.approx(expected)
    assert recipe["achieved_label"] == f"1 of 3 blocks ({expected:.1%} of decoder parameters)"


def test_shortgpt_that_removes_nothing_says_so():
    # 10% of 3 blocks rounds to 0: the "pruned" model is the dense one, and the user must hear it.
    model = tiny_model("llama")
    dense = copy.deepcopy(model)
    with pytest.warns(UserWarning, match=r"removes round\(0.1 x 3\) = 0 of 3 blocks.*above 0.167"):
        result = prune(model, None, PruneConfig(method="shortgpt", sparsity=0.1), calibration=_ids(), show_progress=False)
    assert result.removed_layers == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), dense.state_dict().values()))
