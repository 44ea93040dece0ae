"""The embedded Qwen2.5-Coder-0.5B-Instruct: its tokenizer (from the first chunk; `make setup` installs it)
and, marked `qwen` (run by `make test-qwen`, after `make qwen`), the 2.4 GB dequantized model itself."""
import importlib.util
import os

import pytest
import torch

from tts_prune import embedded_tokenizer
from tts_prune.models.chunks import check_part, locate
from tts_prune.models.embedded import QWEN25_CODER_GGUF

NAME = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="module")
def tokenizer():
    return embedded_tokenizer(NAME)


def test_installed_first_chunk_matches_the_recorded_size_and_sum():
    part = QWEN25_CODER_GGUF.parts[0]
    if importlib.util.find_spec(part.module) is None:  # `make setup` installs it; a shared venv may not have
        pytest.skip(f"{part.requirement} (the tokenizer chunk) is not installed; `make setup` installs it")
    check_part(QWEN25_CODER_GGUF, part, locate(QWEN25_CODER_GGUF, part))
    assert QWEN25_CODER_GGUF.size == 491_400_064  # the published file size


def test_tokenizer_is_qwen25s(tokenizer):
    # Ids of Qwen2.5's vocabulary (tokenizer.json of Qwen/Qwen2.5-*): the BPE pieces and the chat markers
    # s1.1-7B uses for its think/answer delimiters.
    assert len(tokenizer) == 151936 and type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer("Hello world").input_ids == [9707, 1879]  # no BOS, as in Qwen2.5
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    text = "<|im_start|>think\nWait<|im_start|>answer\n"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_chat_template_is_qwen25s(tokenizer):
    messages = [{"role": "user", "content": "What is 2+2?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.fixture(scope="module")
def qwen():
    from tts_prune import load_model

    torch.set_num_threads(2)
    return load_model(NAME, dtype="float32", device="cpu")


@pytest.mark.qwen
def test_qwen_loads_offline_as_plain_qwen2(qwen, tokenizer):
    from tts_prune import decoder_layers, embedded_model_dir

    model, model_tokenizer = qwen
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert len(decoder_layers(model)) == model.config.num_hidden_layers == 24
    assert getattr(model.config, "quantization_config", None) is None
    assert 625e6 < sum(p.numel() for p in model.parameters()) < 635e6  # lm_head untied from the embedding
    assert not list(embedded_model_dir(NAME).glob("*.gguf"))
    # the tokenizer-only cache (from chunk 1) and the model's own tokenizer agree
    text = "Solve 12*7. <|im_start|>think\n"
    assert model_tokenizer(text).input_ids == tokenizer(text).input_ids
    assert model_tokenizer.chat_template == tokenizer.chat_template


@pytest.mark.qwen
def test_qwen_answers_and_reloads_identically(qwen):
    from transformers import AutoModelForCausalLM

    from tts_prune import embedded_model_dir

    model, tokenizer = qwen
    messages = [{"role": "user", "content": "What is 7 times 8? Answer with the number only."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "56" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    reloaded = AutoModelForCausalLM.from_pretrained(embedded_model_dir(NAME), dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(model(ids["input_ids"]).logits, reloaded(ids["input_ids"]).logits)
