"""Analytic FLOPs against torch's own FLOP counter, the cost probe's records, their keys, and both backends' probes."""
from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tts_prune.pruning.shortgpt import remove_layers
from tts_prune.tts.backends import TransformersBackend, open_backend
from tts_prune.tts.cost import CostProbe, load_costs, measure_cost
from tts_prune.tts.flops import kv_cache_bytes, token_flops

SMALL = CostProbe(batch_sizes=(2,), prompt_tokens=8, decode_tokens=3, warmup=0, repeats=1)


def tiny(blocks: int = 4, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=blocks,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = "eager"  # plain matmuls: FlopCounterMode counts them (not CPU SDPA)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def counted_decode_flops(model, context: int, batch: int = 2) -> int:
    """torch's count of one decode step at ``context`` positions (the new token included), per sequence."""
    ids = torch.randint(0, 300, (batch, context - 1))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        with FlopCounterMode(display=False) as counter:
            model(input_ids=out.logits[:, -1:].argmax(-1), past_key_values=out.past_key_values, use_cache=True)
    return counter.get_total_flops() // batch


@pytest.mark.parametrize("context", [2, 17, 64])
def test_token_flops_equal_torchs_flop_counter_at_decode(context):
    model = tiny()
    assert token_flops(model).per_token(context) == counted_decode_flops(model, context)


def test_unstructured_zeros_are_dense_work_and_counted_apart():
    model = tiny()
    with torch.no_grad():
        for block in model.model.layers:
            weight = block.mlp.up_proj.weight
            weight[weight.abs() < weight.abs().median()] = 0  # half of each up_proj pruned
    flops = token_flops(model)
    assert flops.per_token(9) == counted_decode_flops(model, 9)  # the dense kernel still does it all
    zeros = sum(int((b.mlp.up_proj.weight == 0).sum()) for b in model.model.layers)
    assert zeros > 0 and flops.nonzero_linear == flops.linear - 2 * zeros


def test_shortgpt_removed_blocks_cost_nothing():
    full, cut = tiny(blocks=6), remove_layers(tiny(blocks=6), [1, 4])
    a, b = token_flops(full), token_flops(cut)
    # independent: one block's linears from the config, the LM head apart (embeddings cost no FLOPs)
    c = full.config
    block = 2 * (c.hidden_size * c.hidden_size * 2 + c.hidden_size * 2 * 32 + 3 * c.hidden_size * c.intermediate_size)
    head = 2 * c.hidden_size * c.vocab_size
    assert a.linear == 6 * block + head and b.linear == 4 * block + head
    assert b.attention_per_context * 6 == a.attention_per_context * 4 and b.blocks == 4
    assert b.per_token(40) == counted_decode_flops(cut, 40)
    # the cost records (what 05 reads) carry that ratio at the probe's context, beside a well-formed measurement
    records = [measure_cost(TransformersBackend(m, None), m, probe=SMALL) for m in (full, cut)]
    context = SMALL.prompt_tokens + SMALL.decode_tokens / 2
    attention = 4 * c.num_attention_heads * (c.hidden_size // c.num_attention_heads) * context
    assert records[1]["flops_per_token_at_probe_context"] / records[0]["flops_per_token_at_probe_context"] == \
        pytest.approx((4 * (block + attention) + head) / (6 * (block + attention) + head))
    assert [r["flops"]["blocks"] for r in records] == [6, 4] and all(r["measurements"][0]["decode_step_s"] > 0
                                                                      for r in records)


def test_sequence_flops_sum_every_positions_cost():
    flops = token_flops(tiny(blocks=2))
    assert flops.sequence(5, 7) == sum(flops.per_token(i) for i in range(1, 13))
    with pytest.raises(ValueError, match="must be >= 0"):
        flops.sequence(-1, 3)


def test_kv_cache_bytes_match_the_cache_the_model_builds():
    model = tiny(blocks=3)
    with torch.no_grad():
        past = model(input_ids=torch.randint(0, 300, (2, 11)), use_cache=True).past_key_values
    held = sum(t.numel() * t.element_size() for layer in past.layers for t in (layer.keys, layer.values))
    assert kv_cache_bytes(token_flops(model), 11, 2, 4) == held


def test_transformers_probe_record_is_well_formed_and_keyed_by_the_weights(tmp_path):
    model = tiny()
    record = measure_cost(TransformersBackend(model, None), model, out=tmp_path, probe=SMALL, name="tiny")
    (row,) = record["measurements"]
    assert row["batch_size"] == 2 and row["decode_step_s"] > 0 and row["prefill_s"] > 0
    assert row["decode_tokens_per_s"] == pytest.approx(2 / row["decode_step_s"])
    assert row["prefill_s_per_token"] == pytest.approx(row["prefill_s"] / (2 * 8))
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers())
    assert row["peak_memory_bytes"] == weights + kv_cache_bytes(token_flops(model), 8 + 3, 2, 4)
    assert record["flops_per_token_at_probe_context"] == token_flops(model).per_token(8 + 1.5)
    assert record["device"].startswith("cpu:") and record["backend"] == "transformers"
    assert load_costs(tmp_path) == [record]
    again = measure_cost(TransformersBackend(model, None), model, out=tmp_path, probe=SMALL, name="tiny")
    assert again == record  # the same request: read back, not measured again
    other_probe = measure_cost(TransformersBackend(model, None), model, out=tmp_path,
                               probe=CostProbe(batch_sizes=(1,), prompt_tokens=8, decode_tokens=3, warmup=0, repeats=1))
    changed = tiny(seed=1)  # other weights: another key, measured afresh
    other_model = measure_cost(TransformersBackend(changed, None), changed, out=tmp_path, probe=SMALL)
    assert len({record["key"], other_probe["key"], other_model["key"]}) == 3 and len(load_costs(tmp_path)) == 3


def test_probe_defaults_to_the_evaluations_batch_and_refuses_bad_settings():
    model = tiny(blocks=1)
    probe = CostProbe(prompt_tokens=4, decode_tokens=2, warmup=0, repeats=1)
    assert measure_cost(TransformersBackend(model, None, chunk_rows=3), model, probe=probe)["evaluation_batch"] == 3
    with pytest.raises(ValueError, match="decode_tokens=1 must be >= 2"):
        CostProbe(decode_tokens=1)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        CostProbe(batch_sizes=(4, 0))


def test_vllm_probe_drives_the_engines_generate(fake_vllm, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests._helpers_study import tiny_model_dir

    folder = tiny_model_dir(tmp_path / "tiny")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    backend = open_backend("vllm", (model, tokenizer), artifact_root=tmp_path / "artifacts", max_in_flight=6)
    record = measure_cost(backend, model, out=tmp_path / "cost", probe=CostProbe(prompt_tokens=5, decode_tokens=4,
                                                                                  warmup=0, repeats=2))
    assert [e["event"] for e in fake_vllm.EVENTS].count("start") == 1  # the probe started the engine
    assert record["backend"] == "vllm" and record["evaluation_batch"] == 6 and record["model_hash"] == backend.fingerprint
    assert "analytic" in record["measurements"][0]["memory_source"]
    assert json.loads((tmp_path / "cost" / f"{record['key']}.json").read_text()) == record
    backend.close()


def test_evaluation_cost_stores_prompt_lengths_and_probes_at_the_mean_context(tmp_path):
    import pandas as pd
    from transformers import AutoTokenizer

    from tts_prune.models.embedded import embedded_model_dir
    from tts_prune.tts.cost import evaluation_cost, load_prompt_tokens

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir("smollm2-135m-instruct"))
    model = tiny(blocks=1)
    backend = TransformersBackend(model, None, chunk_rows=2)
    prompts = {"a": "What is two plus two?", "b": "Name a prime number larger than ten, and say why it is prime."}
    records = pd.DataFrame({"model_hash": backend.fingerprint, "benchmark": "toy", "problem_id": ["a", "a", "b"],
                            "prompt": [prompts["a"], prompts["a"], prompts["b"]], "thinking_tokens": [100, 140, 300],
                            "answer_tokens": [10, 10, 20]})
    record = evaluation_cost(backend, model, tokenizer, records, tmp_path, decode_tokens=2, warmup=0, repeats=1)
    counts = {p: len(tokenizer(t, add_special_tokens=False)["input_ids"]) for p, t in prompts.items()}
    stored = {(r["benchmark"], r["problem_id"]): r["prompt_tokens"] for r in load_prompt_tokens(tmp_path)}
    assert stored == {("toy", "a"): counts["a"], ("toy", "b"): counts["b"]}
    context = (counts["a"] + counts["b"]) / 2 + (110 + 150 + 320) / 3 / 2  # mean prompt + half the mean generated
    assert record["probe"]["prompt_tokens"] == max(64, -(-context // 64) * 64) and record["evaluation_batch"] == 2
