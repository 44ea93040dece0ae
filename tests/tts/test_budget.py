"""Budget forcing and the incremental sweep: the sweep equals separate runs at each budget."""
import pytest
import torch

from tests._helpers_eval import toy_pair
from tts_prune.tts.generation import DecodingConfig, check_budgets, sweep
from tts_prune.tts.formats import FORMATS, ThinkingFormat, build_prompt, forced_end

torch.set_num_threads(1)
FMT = FORMATS["toy"]
QUESTIONS = ["1+2+3=?", "Sum: 4 5", "7+8", "add 9 and 1 and 2"]


@pytest.fixture(scope="module")
def sharp():
    return toy_pair(seed=0, logit_scale=40.0)   # peaked logits: greedy argmaxes are far from ties


@pytest.fixture(scope="module")
def flat():
    return toy_pair(seed=1, logit_scale=0.01)   # near-uniform: sampled rows often end thinking by themselves


def prompts(tokenizer):
    return [build_prompt(tokenizer, q, FMT) for q in QUESTIONS]


def test_greedy_sweep_equals_separate_runs(sharp):
    model, tok = sharp
    config = DecodingConfig(answer_tokens=6, batch_size=4)
    budgets = [3, 7, 12, 20]
    full = sweep(model, tok, prompts(tok), budgets, FMT, config, show_progress=False)
    for budget in budgets:
        alone = sweep(model, tok, prompts(tok), [budget], FMT, config, show_progress=False)
        assert alone == [g for g in full if g.budget == budget]


def test_greedy_thinking_matches_model_generate(sharp):
    # Independent reference: HF generate on each unpadded prompt; our batched, left-padded loop must agree.
    model, tok = sharp
    budget = 10
    got = sweep(model, tok, prompts(tok), [budget], FMT, DecodingConfig(answer_tokens=4, batch_size=4),
                show_progress=False)
    for g, text in zip(got, prompts(tok)):
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        ref = model.generate(**ids, max_new_tokens=budget, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=None)[0, ids["input_ids"].shape[1]:].tolist()
        end = tok.convert_tokens_to_ids("</think>")
        stop = {end, tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
        cut = next((i for i, t in enumerate(ref) if t in stop), len(ref))
        assert tok.decode(ref[:cut], skip_special_tokens=False) == g.thinking
        assert g.capped == (cut == len(ref))


def test_forced_answer_continues_after_delimiter_and_cue(sharp):
    # The capped answer must equal greedy decoding of prompt + thinking + "</think>" + cue, done by hand.
    model, tok = sharp
    g = sweep(model, tok, prompts(tok)[:1], [5], FMT, DecodingConfig(answer_tokens=5), show_progress=False)[0]
    assert g.capped and g.thinking_tokens == 5
    text = prompts(tok)[0] + g.thinking + forced_end(FMT)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id,
                         eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")])
    assert tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True) == g.answer


def test_sampled_sweep_equals_separate_runs_and_natural_stops(flat):
    model, tok = flat
    config = DecodingConfig(temperature=1.0, top_k=50, top_p=0.95, answer_tokens=4, batch_size=8)
    budgets = [4, 16, 48]
    seeds = [0, 1, 2, 3]
    full = sweep(model, tok, prompts(tok), budgets, FMT, config, seeds=seeds, show_progress=False)
    for budget in budgets:
        alone = sweep(model, tok, prompts(tok), [budget], FMT, config, seeds=seeds, show_progress=False)
        assert alone == [g for g in full if g.budget == budget]
    natural = [g for g in full if not g.capped]
    assert natural, "no row ended thinking by itself; the test would not cover natural stops"
    for g in full:
        assert g.thinking_tokens <= g.budget
        if g.capped:
            assert g.thinking_tokens == g.budget
    # A natural stop at t tokens is the same record at every larger budget.
    by_row = {}
    for g in full:
        by_row.setdefault((g.index, g.seed), []).append(g)
    for records in by_row.values():
        stops = [g for g in records if not g.capped]
        assert all((s.thinking, s.answer) == (stops[0].thinking, stops[0].answer) for s in stops)
        # prefix property: a smaller budget's thinking is a prefix of the larger's
        texts = [g.thinking for g in records]
        assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))


def test_batching_does_not_change_sampled_rows(flat):
    model, tok = flat
    config = DecodingConfig(temperature=1.0, answer_tokens=3, batch_size=8)
    together = sweep(model, tok, prompts(tok), [8], FMT, config, seeds=[5], show_progress=False)
    one_by_one = sweep(model, tok, prompts(tok), [8], FMT, DecodingConfig(temperature=1.0, answer_tokens=3,
                       batch_size=1), seeds=[5], show_progress=False)
    assert together == one_by_one


def test_wait_extension_counts_waits(flat):
    model, tok = flat
    fmt = ThinkingFormat("toy-wait", "<think>\n", "\n</think>\n\n", answer_cue="")
    plain = sweep(model, tok, prompts(tok), [60], fmt, DecodingConfig(temperature=1.0, answer_tokens=2),
                  seeds=[0, 1, 2], show_progress=False)
    waited = sweep(model, tok, prompts(tok), [60], fmt, DecodingConfig(temperature=1.0, answer_tokens=2, waits=2),
                   seeds=[0, 1, 2], show_progress=False)
    assert all(g.waits == 0 for g in plain)
    assert any(g.waits > 0 for g in waited)
    for g in waited:
        assert 0 <= g.waits <= 2 and g.thinking.count("Wait") >= g.waits
    assert sum(g.capped for g in waited) >= sum(g.capped for g in plain)


def test_config_and_budget_errors():
    with pytest.raises(ValueError, match="temperature=-1"):
        DecodingConfig(temperature=-1)
    with pytest.raises(ValueError, match="top_p=0"):
        DecodingConfig(top_p=0)
    with pytest.raises(ValueError, match=r"\[5, 5\]"):
        check_budgets([5, 5])
    assert check_budgets([8, 2]) == (2, 8)
