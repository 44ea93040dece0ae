"""Real Qwen tokenizers for the format tests: Qwen2.5's (s1.1's), and the same vocabulary as Qwen3 has it.

Qwen3 keeps Qwen2.5's vocabulary and adds ``<tool_response>``, ``</tool_response>``, ``<think>``, ``</think>``
as ids 151665-151668 (its tokenizer.json); the embedded Qwen2.5 tokenizer pads those ids with
``[PAD1516xx]`` placeholders, which are renamed here. Qwen3's chat template is test data in ``fixtures/``.
"""
import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
QWEN3_ADDED = {151665: "<tool_response>", 151666: "</tool_response>", 151667: "<think>", 151668: "</think>"}
# DeepSeek-R1-Distill-Qwen's generation prompt (its tokenizer_config.json, January 2025 revision) ends with
# "<｜Assistant｜><think>\n": the template opens the thinking itself. Only the parts the tests need.
R1_TEMPLATE = ("{{ bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}"
               "{{ '<｜User｜>' + message['content'] }}{%- endif %}{%- endfor %}"
               "{%- if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{%- endif %}")


def qwen25():
    """Qwen2.5's tokenizer and chat template (the embedded Qwen2.5-Coder-0.5B-Instruct carries s1.1's vocabulary)."""
    from tts_prune.models.embedded import embedded_tokenizer

    return embedded_tokenizer("qwen2.5-coder-0.5b-instruct")


def _with_added(tokenizer, added: dict[int, str], template: str, name: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    for token_id, content in added.items():
        vocab.pop(by_id[token_id], None)
        vocab[content] = token_id
        spec["added_tokens"].append({"id": token_id, "content": content, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": False})
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token=tokenizer.bos_token)
    fast.chat_template = template
    fast.name_or_path = name
    return fast


def qwen3():
    """Qwen2.5's vocabulary with Qwen3's added thinking tokens and Qwen3's chat template."""
    template = (FIXTURES / "qwen3_chat_template.jinja").read_text()
    return _with_added(qwen25(), QWEN3_ADDED, template, "qwen3-fixture")


def r1_distill():
    """The same vocabulary with ``<think>`` tokens and an R1-distill template that opens ``<think>\\n`` itself."""
    return _with_added(qwen25(), QWEN3_ADDED, R1_TEMPLATE, "r1-distill-fixture")
