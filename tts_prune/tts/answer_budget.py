"""The answer's own budget when ``evaluate`` is not given one: the model card's, else the thinking format's.

s1 leaves the answer thousands of tokens after the end of thinking (``DEFAULT_ANSWER_TOKENS``): right for a
reasoning model on a GPU, ruinous for a small model on a CPU that keeps writing after its answer (the
embedded SmolLM2 spent >11 minutes on three GSM8K problems at one 24-token thinking budget; with 32 answer
tokens, ~30 s). So the default fits the model in hand, in this order:

1. ``answer_tokens`` passed explicitly (an int, or None for "until a stop token") always wins;
2. the model card of an embedded model (``tts_prune.models.cards``; a pruned copy inherits its source's);
3. the thinking format's own budget (``FORMAT_ANSWER_TOKENS``: the toy format answers ``\\boxed{N}``);
4. s1's value, ``DEFAULT_ANSWER_TOKENS``, for every other (reasoning) model.

The value used and where it came from are stored in each record (``answer_budget``, ``answer_budget_source``)
when it was resolved here; a call that passes ``answer_tokens`` writes exactly the records it always did.
"""
from __future__ import annotations

from ..models.cards import card_answer_tokens
from ..models.embedded import EMBEDDED
from .formats import ThinkingFormat
from .generation import DEFAULT_ANSWER_TOKENS

AUTO = "auto"  # evaluate's default: resolve the answer budget from the model card or the format
# A format whose answers have a known short shape; the others keep s1's DEFAULT_ANSWER_TOKENS.
FORMAT_ANSWER_TOKENS = {"toy": EMBEDDED["toy-reasoner"].answer_tokens}  # the format made for the toy reasoner


def resolve_answer_tokens(answer_tokens, fmt: ThinkingFormat, *references) -> tuple[int | None, str | None]:
    """``(answer_tokens, source)``: an explicit value comes back as it is with source None; ``AUTO`` resolves
    from the first of ``references`` (model names, directories, ``config._name_or_path``) that has a card,
    else from ``fmt``, else s1's default; the source says which (``"card:<model>"``, ``"format:<name>"``,
    ``"s1-default"``)."""
    if isinstance(answer_tokens, str):
        if answer_tokens != AUTO:
            raise ValueError(f"answer_tokens={answer_tokens!r} is not a token count: pass an int >= 1, None (until "
                             f"a stop token) or {AUTO!r} (the model card's, else the thinking format's budget)")
    else:
        return answer_tokens, None
    card = card_answer_tokens(*references)
    if card is not None:
        return card[0], f"card:{card[1]}"
    if fmt.name in FORMAT_ANSWER_TOKENS:
        return FORMAT_ANSWER_TOKENS[fmt.name], f"format:{fmt.name}"
    return DEFAULT_ANSWER_TOKENS, "s1-default"
