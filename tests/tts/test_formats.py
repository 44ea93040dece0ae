"""Each thinking format on its real tokenizer and chat template, and what budget forcing appends there.

Expected strings and ids are written out independently: s1's prompt is the literal of its README, its
forced texts those of ``vllm_causallms.py`` (``thinking_end_max = thinking_end + "\\nFinal Answer:"``), and
Qwen3's no-thinking prompt is what its template renders with ``enable_thinking=False``.
"""
import pytest
import torch

from tests.tts import _tokenizers
from tts_prune.tts.formats import FORMATS, build_prompt, detect_format, forced_end, get_format
from tts_prune.tts.generation import sweep
from tts_prune.tts.protocol import (DecodingConfig, answer_stop_ids, encode, end_trigger_ids, forced_end_ids,
                                    natural_end_ids, stop_token_ids)

torch.set_num_threads(1)
IM_START, IM_END, ENDOFTEXT, THINK, END_THINK = 151644, 151645, 151643, 151667, 151668


@pytest.fixture(scope="module")
def qwen25():
    return _tokenizers.qwen25()


@pytest.fixture(scope="module")
def qwen3():
    return _tokenizers.qwen3()


def tiny_qwen2(tokenizer, seed=0):
    """A 1-layer Qwen2 over the full 151,936-token vocabulary (random weights): real ids, real template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         eos_token_id=[IM_END, ENDOFTEXT], pad_token_id=ENDOFTEXT, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval()


def test_s1_is_detected_by_name_and_qwen25_stays_generic(qwen25):
    assert detect_format(qwen25, "simplescaling/s1.1-7B") is FORMATS["s1"]
    assert detect_format(qwen25, "simplescaling/s1-32B") is FORMATS["s1"]
    assert detect_format(qwen25, "Qwen/Qwen2.5-7B-Instruct") is FORMATS["generic"]   # same vocabulary, no thinking
    assert detect_format(qwen25, "Qwen/Qwen2.5-7B-Instruct") is not detect_format(qwen25, "simplescaling/s1.1-7B")
    assert get_format("qwen3") is FORMATS["qwen3"]                                     # an explicit name wins
    with pytest.raises(ValueError, match="unknown; use one of"):
        get_format("s2")


def test_s1_prompt_is_s1s_own(qwen25):
    # The literal prompt of s1's README (vLLM example) followed by its thinking opener.
    expected = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\nHow many r in raspberry<|im_end|>\n<|im_start|>assistant\n<|im_start|>think")
    assert build_prompt(qwen25, "How many r in raspberry", FORMATS["s1"]) == expected


def test_s1_forced_ids_on_the_qwen25_tokenizer(qwen25):
    fmt, tok = FORMATS["s1"], qwen25
    stops = stop_token_ids(type("M", (), {"generation_config": None})(), tok)
    assert stops == {IM_END}
    assert end_trigger_ids(tok, fmt, stops) == {IM_START}                         # s1's until_thinking
    answer_ids = tok("<|im_start|>answer\nFinal Answer:", add_special_tokens=False)["input_ids"]
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    no_newline = tok("so 3 r.", add_special_tokens=False)["input_ids"]
    with_newline = tok("so 3 r.\n", add_special_tokens=False)["input_ids"]
    assert forced_end_ids(tok, fmt, no_newline) == newline + answer_ids           # s1 adds "\n" first
    assert forced_end_ids(tok, fmt, with_newline) == answer_ids
    assert answer_ids[0] == IM_START and tok.decode(answer_ids[1:2]) == "answer"
    assert natural_end_ids(tok, fmt, IM_END, {IM_START}) == tok("<|im_start|>answer", add_special_tokens=False)[
        "input_ids"]
    assert answer_stop_ids(tok, fmt, stops) == {IM_START, IM_END}
    assert forced_end(fmt, "so 3 r.") == "\n<|im_start|>answer\nFinal Answer:"
    assert encode(tok, "Wait") == tok("Wait", add_special_tokens=False)["input_ids"]


def test_s1_sweep_on_the_real_tokenizer_appends_s1s_text(qwen25):
    # A capped s1 record's answer is greedy decoding of prompt + thinking + s1's forced end (independent: HF generate).
    tok, fmt = qwen25, FORMATS["s1"]
    model = tiny_qwen2(tok)
    prompts = [build_prompt(tok, q, fmt) for q in ["What is 2+2?", "Name a prime."]]
    gens = sweep(model, tok, prompts, [0, 3, 7], fmt, DecodingConfig(answer_tokens=5, batch_size=2),
                 show_progress=False)
    assert {(g.index, g.budget) for g in gens} == {(i, b) for i in (0, 1) for b in (0, 3, 7)}
    for g in gens:
        assert g.capped and g.thinking_tokens == g.budget
        think_ids = tok(g.thinking, add_special_tokens=False)["input_ids"] if g.thinking else []
        assert g.forced == forced_end(fmt, g.thinking)
        ids = tok(prompts[g.index], add_special_tokens=False)["input_ids"] + think_ids + forced_end_ids(tok, fmt, think_ids)
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=5, do_sample=False, eos_token_id=[IM_START, IM_END, ENDOFTEXT],
                             pad_token_id=ENDOFTEXT)[0, len(ids):].tolist()
        cut = next((i for i, t in enumerate(out) if t in (IM_START, IM_END, ENDOFTEXT)), len(out))
        assert tok.decode(out[:cut], skip_special_tokens=True) == g.answer
        assert g.answer_capped == (cut == 5)


def test_qwen3_on_its_template_and_added_tokens(qwen3):
    tok = qwen3
    tok.name_or_path = "some-local-dir"                      # detection from the vocabulary and template alone
    fmt = detect_format(tok)
    assert fmt is FORMATS["qwen3"]
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [THINK, END_THINK]
    thinking = build_prompt(tok, "What is 2+2?", fmt)
    content = "What is 2+2?\n\n" + fmt.instruction
    assert thinking == f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    plain = build_prompt(tok, "What is 2+2?", fmt, thinking=False)
    assert plain == f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert end_trigger_ids(tok, fmt, {IM_END}) == {END_THINK}
    assert forced_end_ids(tok, fmt, [100, 200]) == tok("\n</think>\n\n", add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="no no-thinking prompt"):
        build_prompt(tok, "x", FORMATS["s1"], thinking=False)


def test_qwen3_sweep_and_no_thinking_baseline_on_its_template(qwen3, tmp_path):
    # evaluate() builds budget 0 from enable_thinking=False and the other budgets from the thinking prompt.
    import json

    from tts_prune.tts.evaluation import evaluate

    tok = qwen3
    model = tiny_qwen2(tok, seed=1)
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "What is 2+2?", "answer": "4"}) + "\n")
    df = evaluate((model, tok), str(data), [0, 4], thinking_format="qwen3", answer_tokens=4, out=tmp_path / "r",
                  model_name="tiny-qwen3", show_progress=False)
    zero, four = df[df["budget"] == 0].iloc[0], df[df["budget"] == 4].iloc[0]
    assert zero["prompt"] == build_prompt(tok, "What is 2+2?", FORMATS["qwen3"], thinking=False)
    assert zero["thinking"] == "" and zero["forced"] == "" and zero["thinking_tokens"] == 0
    assert four["prompt"].endswith("<|im_start|>assistant\n<think>\n") and four["forced"] == "\n</think>\n\n"
    ids = tok(zero["prompt"], add_special_tokens=False)["input_ids"]
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=4, do_sample=False, eos_token_id=[IM_END, ENDOFTEXT],
                         pad_token_id=ENDOFTEXT)[0, len(ids):].tolist()
    assert tok.decode([t for t in out if t not in (IM_END, ENDOFTEXT)], skip_special_tokens=True) == zero["answer"]


def test_r1_template_opens_think_once(qwen25):
    tok = _tokenizers.r1_distill()
    tok.name_or_path = "local"
    fmt = detect_format(tok)
    assert fmt is FORMATS["r1"]
    prompt = build_prompt(tok, "What is 2+2?", fmt)
    assert prompt.endswith("<｜Assistant｜><think>\n") and prompt.count("<think>") == 1
    assert detect_format(tok, "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") is FORMATS["r1"]


def test_paper_study_names_each_models_format():
    from tts_prune import paths
    from tts_prune.study.grid import expand, load_study

    study = load_study(paths.ROOT / "studies" / "paper.yaml")
    cells = [c for c in expand(study, reports=paths.ROOT / "reports-test-only") if c.notebook == "04-tts-scaling"]
    formats = {c.axes["model"]: {c.parameters["thinking_format"]} for c in cells}
    assert formats == {"simplescaling/s1.1-7B": {"s1"}, "Qwen/Qwen3-8B": {"qwen3"}}
    qwen_budgets = {tuple(c.parameters["budgets"]) for c in cells if c.axes["model"] == "Qwen/Qwen3-8B"}
    assert qwen_budgets == {(512, 1024, 2048, 4096, 8192)}  # the authors' TOKENS, no budget 0
    assert {c.parameters["answer_tokens"] for c in cells} == {4096}
    assert {c.parameters["max_gen_tokens"] for c in cells} == {32768}   # the authors' harness allowance
    with pytest.raises(ValueError, match="max_gen_tokens=0"):
        load_study(paths.ROOT / "studies" / "paper.yaml", max_gen_tokens=0)
    with pytest.raises(ValueError, match="thinking_format='s2'"):
        load_study(paths.ROOT / "studies" / "paper.yaml", thinking_format="s2")
