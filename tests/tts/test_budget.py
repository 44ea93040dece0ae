"""Budget forcing and the incremental sweep: the sweep equals separate runs at each budget."""
import pytest
import torch

from tests._helpers_eval import toy_pair
from tts_prune.tts.generation import DecodingConfig, check_budgets, sweep
from tts_prune.tts.formats import FORMATS, ThinkingFormat, build_prompt, forced_end  # noqa: F401

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


# ----------------------------------------------------------------------------- s1's answer phase, Wait, min thinking
@pytest.fixture(scope="module")
def stopper():
    return toy_pair(seed=6, logit_scale=1.0)   # greedy rows end thinking by "</think>" (rows 2, 7) and by EOS (0, 3)


def ends_of(tok):
    return [tok.convert_tokens_to_ids("</think>"), tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")]


def reference(model, tok, ids, max_new, min_new=0, stops=None):
    """HF generate with vLLM's stop semantics: the stop token ends the output (kept), ``min_new`` masks stops."""
    stops = stops or ends_of(tok)
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new, min_new_tokens=min_new or None, do_sample=False,
                         eos_token_id=stops, pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
    cut = next((i + 1 for i, t in enumerate(out) if t in stops), len(out))
    return out[:cut]


def test_answer_budget_is_thousands_and_not_cut_at_64(sharp):
    assert DecodingConfig().answer_tokens >= 1000
    model, tok = sharp
    g = sweep(model, tok, prompts(tok)[:1], [5], FMT, DecodingConfig(answer_tokens=150), show_progress=False)[0]
    ids = tok(prompts(tok)[0] + g.thinking + g.forced, add_special_tokens=False)["input_ids"]
    out = reference(model, tok, ids, 150, stops=[tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")])
    stopped = out[-1] in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"))
    assert tok.decode(out[:-1] if stopped else out, skip_special_tokens=True) == g.answer
    assert g.answer_tokens > 64 and g.answer_capped == (not stopped)


def test_wait_is_s1s_exact_string_with_one_token_after_it(stopper):
    # s1 (vllm_causallms.py, thinking_n_ignore): drop the stop, append tokens of "Wait", generate again with
    # min_tokens=1 -- rebuilt here from HF generate, round by round.
    model, tok = stopper
    budget, ends = 60, ends_of(tok)
    wait_ids = tok("Wait", add_special_tokens=False)["input_ids"]
    got = sweep(model, tok, prompts(tok)[2:3], [budget], FMT, DecodingConfig(answer_tokens=4, waits=1),
                show_progress=False)[0]
    base = tok(prompts(tok)[2], add_special_tokens=False)["input_ids"]
    first = reference(model, tok, base, budget, min_new=1)
    assert first[-1] in ends                                        # the row does try to stop
    thinking = first[:-1] + wait_ids
    second = reference(model, tok, base + thinking, budget - len(thinking), min_new=1)
    assert second[0] not in ends                                    # at least one token after "Wait"
    thinking += second[:-1] if second[-1] in ends else second
    assert got.thinking == tok.decode(thinking[:budget], skip_special_tokens=False)
    assert got.waits == 1 and got.thinking.startswith(tok.decode(first[:-1], skip_special_tokens=False) + "Wait")


def test_min_thinking_suppresses_the_end_until_the_minimum(stopper):
    model, tok = stopper
    m = 25
    got = sweep(model, tok, prompts(tok), [60], FMT, DecodingConfig(answer_tokens=3, min_thinking=m),
                show_progress=False)
    plain = sweep(model, tok, prompts(tok), [60], FMT, DecodingConfig(answer_tokens=3), show_progress=False)
    assert any(not g.capped and g.thinking_tokens < m for g in plain)   # without it, some rows stop earlier
    for g in got:
        ids = reference(model, tok, tok(prompts(tok)[g.index], add_special_tokens=False)["input_ids"], 60, min_new=m)
        stopped = ids[-1] in ends_of(tok)
        assert g.thinking == tok.decode(ids[:-1] if stopped else ids, skip_special_tokens=False)
        assert g.capped == (not stopped) and (g.capped or g.thinking_tokens >= m)


def test_s1_style_natural_stop_forces_the_answer_delimiter(stopper):
    # s1 drops the model's stop token (delimiter or end of turn) and appends "<|im_start|>answer"; here the
    # toy vocabulary's analogue "</think>\n" is forced, and the answer continues from it.
    model, tok = stopper
    fmt = ThinkingFormat("s1-like", "<think>\n", "</think>", answer_cue="\nFinal Answer:", cap_newline=True,
                         natural_end="</think>\n", answer_stops=("<|im_start|>",))
    texts = [build_prompt(tok, q, fmt) for q in QUESTIONS]
    gens = sweep(model, tok, texts, [60], fmt, DecodingConfig(answer_tokens=5), show_progress=False)
    eos_stopped = [g for g in gens if not g.capped and g.index in (0, 3)]
    assert eos_stopped, "no row ended its turn inside thinking"
    for g in gens:
        if g.capped:
            assert g.forced == ("" if g.thinking.endswith("\n") else "\n") + "</think>\nFinal Answer:"
            continue
        assert g.forced == "</think>\n"                             # also after an end of turn (EOS)
        ids = tok(texts[g.index] + g.thinking, add_special_tokens=False)["input_ids"] + tok(
            "</think>\n", add_special_tokens=False)["input_ids"]
        stops = [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|im_start|>")]
        out = reference(model, tok, ids, 5, stops=stops)
        assert g.answer == tok.decode(out[:-1] if out[-1] in stops else out, skip_special_tokens=True)


def test_graded_text_never_credits_a_box_in_cut_off_thinking():
    from tts_prune.tts.evaluation import graded_text
    from tts_prune.tts.generation import Generation
    from tts_prune.tts.grading import grade_answer

    cut = Generation(0, 0, 64, thinking="so x = 4, \\boxed{4} hmm", answer="I am not sure", thinking_tokens=64,
                     answer_tokens=4, capped=True, waits=0)
    grade = grade_answer("math", graded_text(cut, FORMATS["qwen3"]), "4")
    assert not grade.correct
    assert grade_answer("math", graded_text(cut, FORMATS["qwen3"], grade_thinking=True), "4").correct
    empty = Generation(0, 0, 64, thinking="\\boxed{4}", answer="", thinking_tokens=64, answer_tokens=0, capped=True,
                       waits=0)
    none = grade_answer("math", graded_text(empty, FORMATS["s1"]), "4")
    assert not none.correct and none.no_answer
    # generic format, natural stop: the model answered in its own text, which is graded whole
    spoke = Generation(0, 0, 64, thinking="2+2 is \\boxed{4}.", answer="", thinking_tokens=8, answer_tokens=0,
                       capped=False, waits=0)
    assert grade_answer("math", graded_text(spoke, FORMATS["generic"]), "4").correct
    assert not grade_answer("math", graded_text(spoke, FORMATS["qwen3"]), "4").correct
