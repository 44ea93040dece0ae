"""What a model's card says about evaluating it: the answer budget an embedded model was measured with.

A model in hand is recognised as an embedded one by its reference (``"smollm2-135m-instruct"``), by the
directory it was loaded from (``models/embedded/<name>``, a loaded model's ``config._name_or_path``), or by
a pruned copy's ``pruning_recipe.json`` whose ``source_model`` is one of those (followed through pruned
copies of pruned copies). Hub ids and other directories have no card here: their thinking format decides
(``tts_prune.tts.answer_budget``).
"""
from __future__ import annotations

import json
from pathlib import Path

from .embedded import EMBEDDED

_RECIPE = "pruning_recipe.json"  # written by tts_prune.pruning.driver.save_pruned
_MAX_HOPS = 8  # pruned copies of pruned copies; a cycle of recipes cannot loop forever


def embedded_name(reference) -> str | None:
    """The embedded model ``reference`` (a name, a model directory, or a pruned copy of either) is, or None."""
    for _ in range(_MAX_HOPS):
        if reference is None or not str(reference):
            return None
        text = str(reference)
        if text in EMBEDDED:
            return text
        path = Path(text).expanduser()
        if path.name in EMBEDDED and path.parent.name == "embedded":  # paths.MODELS_DIR/embedded/<name>
            return path.name
        recipe = path / _RECIPE
        if not recipe.is_file():
            return None
        try:
            reference = json.loads(recipe.read_text()).get("source_model")
        except (OSError, ValueError, AttributeError):  # a broken recipe names no source: no card
            return None
    return None


def card_answer_tokens(*references) -> tuple[int, str] | None:
    """``(answer_tokens, embedded name)`` from the first of ``references`` that is an embedded model whose card
    states an answer budget; None when none does."""
    for reference in references:
        name = embedded_name(reference)
        if name is not None and EMBEDDED[name].answer_tokens is not None:
            return EMBEDDED[name].answer_tokens, name
    return None
