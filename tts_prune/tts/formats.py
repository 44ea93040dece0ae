"""Prompts, thinking delimiters per model family, and the text budget forcing appends.

Budget forcing follows s1 (Muennighoff et al., "s1: Simple test-time scaling", arXiv 2501.19393):
thinking is capped at B tokens; at the cap the end-of-thinking delimiter and an answer cue are
appended and a short answer is generated. In extension mode an attempt to stop thinking is
suppressed and "Wait" is appended instead, up to N times.

A ``ThinkingFormat`` says how thinking opens and closes for a family: Qwen3 writes
``<think>...</think>``, s1 models ``<|im_start|>think ... <|im_start|>answer``, and a model that was
never trained to think gets the ``generic`` format: "think step by step" in the instruction, no
opening delimiter, and at the cap a forced answer cue. Formats live in the ``FORMATS`` registry and
any field can be overridden with ``dataclasses.replace``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThinkingFormat:
    """How a family delimits thinking. ``think_end`` is what the model emits (or we force) to stop."""

    name: str
    think_start: str          # appended after the chat template's generation prompt
    think_end: str            # end-of-thinking delimiter; "" means the model's EOS ends the response
    answer_cue: str = "Final Answer: "
    wait: str = "Wait"
    instruction: str = ""     # appended to the user message

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ThinkingFormat.name is empty; give the format a name such as 'qwen3'")
        if not self.wait.strip():
            raise ValueError(f"ThinkingFormat.wait={self.wait!r} is blank; extension mode needs a word such as 'Wait'")


BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

FORMATS: dict[str, ThinkingFormat] = {
    "qwen3": ThinkingFormat("qwen3", "<think>\n", "\n</think>\n\n", instruction=BOXED_INSTRUCTION),
    "s1": ThinkingFormat("s1", "<|im_start|>think\n", "<|im_start|>answer\n", instruction=BOXED_INSTRUCTION),
    # The toy reasoner (tts_prune.models.toy) answers "\boxed{N}" right after "</think>\n\n": no cue needed.
    "toy": ThinkingFormat("toy", "<think>\n", "\n</think>\n\n", answer_cue=""),
    "generic": ThinkingFormat(
        "generic", "", "\n\n", instruction="Think step by step, then give the final answer within \\boxed{}."),
}


def get_format(name: str | ThinkingFormat) -> ThinkingFormat:
    """A format by name (or the format itself)."""
    if isinstance(name, ThinkingFormat):
        return name
    if name not in FORMATS:
        raise ValueError(f"thinking format {name!r} is unknown; use one of {sorted(FORMATS)} or pass a ThinkingFormat")
    return FORMATS[name]


def detect_format(tokenizer) -> ThinkingFormat:
    """Guess the family's format from its vocabulary: ``<think>`` as a token means Qwen3-style thinking.

    The toy reasoner's tokenizer is character-level with ``<think>`` special: it also has ``<|im_start|>``
    but no ``assistant`` word, which tells it apart from Qwen3.
    """
    vocab = tokenizer.get_vocab()
    if "<think>" in vocab and "</think>" in vocab:
        return FORMATS["toy"] if "assistant" not in vocab and "Ġassistant" not in vocab else FORMATS["qwen3"]
    return FORMATS["generic"]


def build_prompt(tokenizer, user_text: str, fmt: ThinkingFormat) -> str:
    """The chat-templated prompt, ending where the model's thinking starts."""
    content = f"{user_text}\n\n{fmt.instruction}" if fmt.instruction else user_text
    messages = [{"role": "user", "content": content}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # base models without a template: a plain question/answer layout
        text = f"Question: {content}\nAnswer: "
    return text + fmt.think_start


def forced_end(fmt: ThinkingFormat) -> str:
    """What budget forcing appends at the cap: the end delimiter, then the answer cue."""
    return fmt.think_end + fmt.answer_cue


def wait_text(fmt: ThinkingFormat) -> str:
    """What extension mode appends instead of ending the thought (s1 appends "Wait")."""
    return "\n" + fmt.wait
