import pytest
import torch
from torch import nn

from tests.conftest import FAMILIES, tiny_model
from tts_prune import NoDecoderLayersError, decoder_layers, layer_summary, prunable_linears
from tts_prune.models.layers import decoder_stack, weight_matrix

# What each family's block must expose: the kit prunes exactly these matrices.
EXPECTED_LINEARS = {
    "llama": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"},
    "phi3": {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"},
    "gpt2": {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"},
}
for _name in ("qwen2", "qwen3", "mistral", "gemma2"):
    EXPECTED_LINEARS[_name] = EXPECTED_LINEARS["llama"]


def test_decoder_layers_are_the_blocks_of_every_family(family_model):
    family, model = family_model
    layers = decoder_layers(model)
    assert len(layers) == 3
    blocks_by_hand = model.transformer.h if family == "gpt2" else model.model.layers
    assert all(a is b for a, b in zip(layers, blocks_by_hand))
    for block in layers:
        assert set(prunable_linears(block)) == EXPECTED_LINEARS[family]


def test_embeddings_and_head_are_never_prunable(family_model):
    _, model = family_model
    found = {id(m) for block in decoder_layers(model) for m in prunable_linears(block).values()}
    assert id(model.get_output_embeddings()) not in found
    assert id(model.get_input_embeddings()) not in found


def test_weight_matrix_is_out_by_in_and_shares_storage(family_model):
    family, model = family_model
    for module in prunable_linears(decoder_layers(model)[0]).values():
        w = weight_matrix(module)
        x = torch.randn(2, w.shape[1])
        # the (out, in) view must reproduce the layer's own output (bias included)
        assert torch.allclose(module(x), x @ w.t() + (module.bias if module.bias is not None else 0), atol=1e-5)
    module = next(iter(prunable_linears(decoder_layers(model)[0]).values()))
    weight_matrix(module)[0, 0] = 0.0
    assert float(weight_matrix(module)[0, 0]) == 0.0


def test_layer_summary_counts_parameters(family_model):
    _, model = family_model
    table = layer_summary(model)
    assert list(table["layer"]) == [0, 1, 2]
    block = decoder_layers(model)[1]
    assert table.loc[1, "params"] == sum(p.numel() for p in block.parameters())
    assert table.loc[1, "prunable_params"] == sum(m.weight.numel() for m in prunable_linears(block).values())


def test_decoder_stack_parent_allows_replacing_the_list():
    model = tiny_model("qwen3")
    parent, attr = decoder_stack(model)
    assert parent is model.model and attr == "layers"


def test_model_without_decoder_blocks_is_a_clear_error():
    with pytest.raises(NoDecoderLayersError, match="no stack of decoder blocks"):
        decoder_layers(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))


def test_all_seven_families_are_covered():
    assert set(FAMILIES) == {"llama", "qwen2", "qwen3", "mistral", "gemma2", "phi3", "gpt2"}
