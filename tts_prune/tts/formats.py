"""Prompts, thinking delimiters per model family, and the text budget forcing appends.

Budget forcing follows s1 (Muennighoff et al., "s1: Simple test-time scaling", arXiv 2501.19393, and its
lm-evaluation-harness fork, ``lm_eval/models/vllm_causallms.py``): thinking is capped at B tokens; at the
cap the end-of-thinking delimiter and an answer cue are appended and the answer is generated with its own,
separate budget. In extension mode an attempt to stop thinking is suppressed and "Wait" is appended
instead, up to N times.

A ``ThinkingFormat`` says how thinking opens and closes for a family:

- ``s1`` (s1, s1.1): ``<|im_start|>think`` opens, ``<|im_start|>`` (the first token of
  ``<|im_start|>answer``) ends thinking. At the cap s1 appends ``<|im_start|>answer\\nFinal Answer:``
  (after a newline unless the thinking already ends with one); after a natural stop it drops the
  model's stop token and appends ``<|im_start|>answer``. Inside the answer ``<|im_start|>`` stops.
- ``qwen3``: Qwen3's chat template with thinking on, ``<think>\\n ... \\n</think>\\n\\n``; its
  ``enable_thinking=False`` prompt is the no-thinking baseline (the budget-0 point of a curve).
- ``r1`` (DeepSeek-R1 distills): the chat template itself ends with ``<think>\\n``; it is never added twice.
- ``generic``: a model never trained to think: "think step by step" in the instruction, no delimiter,
  at the cap a forced answer cue. ``toy``: the toy reasoner of ``tts_prune.models.toy``.

Formats live in the ``FORMATS`` registry; any field can be overridden with ``dataclasses.replace``.
``detect_format`` reads the tokenizer and, where the vocabulary cannot tell (s1.1 and Qwen2.5-Instruct
share one), the model's name; an explicit format always wins.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ThinkingFormat:
    """How a family delimits thinking and what budget forcing appends."""

    name: str
    think_start: str          # appended after the chat template's generation prompt (unless it is already there)
    think_end: str            # end-of-thinking delimiter; "" means the model's end of turn ends the response
    answer_cue: str = ""      # appended after ``think_end`` when the budget cuts the thinking
    wait: str = "Wait"        # extension mode appends exactly this text (s1: "Wait")
    instruction: str = ""     # appended to the user message
    system: str | None = None  # system message; None: whatever the chat template does without one
    cap_newline: bool = False  # at the cap, a "\n" goes before ``think_end`` unless the thinking ends with one (s1)
    natural_end: str | None = None  # after a natural stop: drop the stop token and force this (s1); None: keep it
    answer_stops: tuple[str, ...] = ()  # single tokens that end the answer besides the end of turn (s1: <|im_start|>)
    no_thinking: dict = field(default_factory=dict)  # chat-template switches for the no-thinking baseline

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ThinkingFormat.name is empty; give the format a name such as 'qwen3'")
        if not self.wait.strip():
            raise ValueError(f"ThinkingFormat.wait={self.wait!r} is blank; extension mode needs a word such as 'Wait'")

    def __hash__(self) -> int:  # ``no_thinking`` is a dict; hash the identity-relevant text fields
        return hash((self.name, self.think_start, self.think_end, self.answer_cue, self.wait))

    def describe(self) -> dict:
        """Every field, for result records and the cache key."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}


BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # s1's README prompt

FORMATS: dict[str, ThinkingFormat] = {
    # s1's eval sends the bare question (tasks/openai_math: QUERY_TEMPLATE = '{Question}') with this system prompt.
    "s1": ThinkingFormat("s1", "<|im_start|>think", "<|im_start|>answer", answer_cue="\nFinal Answer:",
                         system=QWEN25_SYSTEM, cap_newline=True, natural_end="<|im_start|>answer",
                         answer_stops=("<|im_start|>",)),
    "qwen3": ThinkingFormat("qwen3", "<think>\n", "\n</think>\n\n", instruction=BOXED_INSTRUCTION,
                            no_thinking={"enable_thinking": False}),
    "r1": ThinkingFormat("r1", "<think>\n", "\n</think>\n\n", instruction=BOXED_INSTRUCTION),
    # The toy reasoner (tts_prune.models.toy) answers "\boxed{N}" right after "</think>\n\n": no cue needed.
    "toy": ThinkingFormat("toy", "<think>\n", "\n</think>\n\n"),
    "generic": ThinkingFormat(
        "generic", "", "\n\n", answer_cue="Final Answer: ",
        instruction="Think step by step, then give the final answer within \\boxed{}."),
}

# Model names the vocabulary cannot tell apart (s1.1 has Qwen2.5's tokenizer and template): name -> format.
NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"(^|[/_-])s1(\.\d+)?([-_]|$)", "s1"),
    (r"deepseek-r1-distill", "r1"),
    (r"qwen3", "qwen3"),
)


def get_format(name: str | ThinkingFormat) -> ThinkingFormat:
    """A format by name (or the format itself)."""
    if isinstance(name, ThinkingFormat):
        return name
    if name not in FORMATS:
        raise ValueError(f"thinking format {name!r} is unknown; use one of {sorted(FORMATS)} or pass a ThinkingFormat")
    return FORMATS[name]


def format_from_name(*names: str | None) -> ThinkingFormat | None:
    """The format a model name implies (``NAME_PATTERNS``), or None when no name matches."""
    for name in names:
        text = str(name or "").lower()
        for pattern, format_name in NAME_PATTERNS:
            if text and re.search(pattern, text):
                return FORMATS[format_name]
    return None


def _generation_prompt(tokenizer, **switches) -> str:
    messages = [{"role": "user", "content": "x"}]
    with_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **switches)
    without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False, **switches)
    return with_prompt[len(without):] if with_prompt.startswith(without) else with_prompt


def detect_format(tokenizer, model_name: str | None = None, config=None) -> ThinkingFormat:
    """The family's format from the model's name (s1.1 vs Qwen2.5 share a vocabulary) and its tokenizer.

    ``<think>``/``</think>`` in the vocabulary: a chat template whose generation prompt already opens
    ``<think>`` is ``r1``; one with Qwen3's ``enable_thinking`` switch is ``qwen3``; the toy reasoner's
    character-level tokenizer (no ``assistant`` word) is ``toy``. Anything else is ``generic``.
    """
    names = [model_name, getattr(config, "_name_or_path", None), getattr(tokenizer, "name_or_path", None)]
    by_name = format_from_name(*names)
    if by_name is not None:
        return by_name
    vocab = tokenizer.get_vocab()
    if "<think>" in vocab and "</think>" in vocab:
        if "assistant" not in vocab and "Ġassistant" not in vocab:
            return FORMATS["toy"]
        template = getattr(tokenizer, "chat_template", None) or ""
        if template and _generation_prompt(tokenizer).rstrip().endswith("<think>"):
            return FORMATS["r1"]
        return FORMATS["qwen3"]
    return FORMATS["generic"]


def build_prompt(tokenizer, user_text: str, fmt: ThinkingFormat, thinking: bool = True) -> str:
    """The chat-templated prompt, ending where the model's thinking starts.

    ``thinking=False`` builds the format's no-thinking prompt (Qwen3: ``enable_thinking=False``); only
    formats with ``no_thinking`` switches have one. A template that already opens the thinking (R1
    distills end with ``<think>\\n``) does not get ``think_start`` a second time.
    """
    if not thinking and not fmt.no_thinking:
        raise ValueError(f"format {fmt.name!r} has no no-thinking prompt; only formats with `no_thinking` "
                         f"switches do ({[n for n, f in FORMATS.items() if f.no_thinking]})")
    content = f"{user_text}\n\n{fmt.instruction}" if fmt.instruction else user_text
    messages = ([{"role": "system", "content": fmt.system}] if fmt.system is not None else []) + [
        {"role": "user", "content": content}]
    if getattr(tokenizer, "chat_template", None):
        switches = {} if thinking else dict(fmt.no_thinking)
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **switches)
    else:  # base models without a template: a plain question/answer layout
        if not thinking:
            raise ValueError("a tokenizer without a chat template has no no-thinking switch; give it a template")
        text = f"Question: {content}\nAnswer: "
    if not thinking:
        return text
    opened = fmt.think_start and (text.endswith(fmt.think_start) or text.endswith(fmt.think_start.rstrip("\n")))
    if opened:
        return text if text.endswith(fmt.think_start) else text + fmt.think_start[len(fmt.think_start.rstrip("\n")):]
    return text + fmt.think_start


def cap_prefix(fmt: ThinkingFormat, thinking_text: str) -> str:
    """s1's newline before the forced end, when the thinking does not already end with one (else "")."""
    return "\n" if fmt.cap_newline and thinking_text and not thinking_text.endswith("\n") else ""


def forced_end(fmt: ThinkingFormat, thinking_text: str = "\n") -> str:
    """What budget forcing appends at the cap after ``thinking_text``: [newline], end delimiter, answer cue."""
    return cap_prefix(fmt, thinking_text) + fmt.think_end + fmt.answer_cue


def wait_text(fmt: ThinkingFormat) -> str:
    """What extension mode appends instead of ending the thought: exactly ``fmt.wait`` (s1 appends "Wait")."""
    return fmt.wait


def answer_only(fmt: ThinkingFormat) -> ThinkingFormat:
    """The format of a prompt that already closed the thinking (the no-thinking baseline): nothing appended."""
    return replace(fmt, name=fmt.name, think_start="", think_end="", answer_cue="", cap_newline=False,
                   natural_end=None)
