"""What each grading protocol reads of a generation, the record's ``grading`` field, and regrading from the store.

A record's key hashes its ``grading`` field (``results.KEY_FIELDS``): the protocol, and for ``s1-harness``
the judge (base URL, model, temperature, max_tokens, seed, prompt hash) or the offline fallback, so a record
graded one way is never served for another. Generating again for a new grading would waste the expensive
part, so ``fill_from_store`` regrades a stored generation of the same request (every key field but
``grading`` equal: ``generation_key``) from its stored texts and appends the new record, marked
``regraded_from`` with the source record's key.

The text each protocol reads (``response_text``):

- ``kit``: the answer part, *with the forced answer cue kept* when the budget cut the thinking (s1's
  ``Final Answer:``, generic's ``Final Answer: ``): the model continued that text, so " 204\\n\\nThe walk
  takes 4 hours at speed 2.5 km/h." is read as "Final Answer: 204 ..." -> 204, not the last number 2.5, and
  " **B**\\n\\nExplanation..." as "Final Answer: **B**" -> B. A natural stop in a format without an end
  delimiter (``generic``) is graded whole; ``grade_thinking=True`` also credits an answer inside thinking.
- ``s1-harness``: the whole response as their harness holds it (prompt excluded): thinking + forced text +
  answer; their split rules (``harness``) pick the part they read.
"""
from __future__ import annotations

import hashlib
import json

from .formats import ThinkingFormat, answer_only
from .grading import DEFAULT_TIMEOUT_S, check_protocol, grade_answer
from .harness import judge_question
from .judge import JudgeConfig
from .results import KEY_FIELDS, ResultStore, record_key

TEXT_FIELDS = ("thinking", "forced", "answer", "capped")


def response_text(thinking: str, forced: str, answer: str, capped: bool, fmt: ThinkingFormat,
                  protocol: str = "kit", grade_thinking: bool = False) -> str:
    """The text ``protocol`` grades (see the module docstring)."""
    if check_protocol(protocol) == "s1-harness":
        return f"{thinking}{forced}{answer}"
    if not capped and not fmt.think_end.strip():
        return thinking + answer  # generic natural stop: the model's whole response is its answer
    spoken = f"{fmt.answer_cue}{answer}" if capped else answer  # the forced cue the model continued
    return f"{thinking}\n{spoken}" if grade_thinking else spoken


def grading_spec(protocol: str, grade_thinking: bool = False, judge: JudgeConfig | None = None) -> dict:
    """The record's ``grading`` field (part of its key)."""
    if check_protocol(protocol) == "kit":
        return {"protocol": "kit", "grade_thinking": bool(grade_thinking)}
    return {"protocol": protocol, "judge": judge.describe() if judge is not None else "fallback-kit-grader"}


def protocols_of(grading) -> tuple[str, ...]:
    """``"kit"`` or ``["kit", "s1-harness"]`` -> a tuple of distinct, known protocol names."""
    names = (grading,) if isinstance(grading, str) else tuple(grading or ())
    if not names or len(set(names)) != len(names):
        raise ValueError(f"grading={grading!r} must name one protocol or a list of distinct ones, e.g. 'kit' or "
                         "['kit', 's1-harness']")
    return tuple(check_protocol(n) for n in names)


def generation_key(record: dict) -> str:
    """Identity of a record's generation: every key field but ``grading``."""
    parts = {k: record.get(k) for k in KEY_FIELDS if k != "grading"}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _loose_key(record: dict) -> str:
    """A generation's identity without its prompt text (which shard indexes leave out)."""
    parts = {k: record.get(k) for k in KEY_FIELDS if k not in ("grading", "prompt")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def record_format(record: dict, fmt: ThinkingFormat | None = None) -> ThinkingFormat:
    """The format a record was generated with (``format_spec``), as the evaluator grouped it: budget 0 of a
    format with a no-thinking prompt is that prompt, whose format appends nothing."""
    if fmt is None:
        known = ThinkingFormat.__dataclass_fields__  # a record written by another version may carry other fields
        spec = {k: v for k, v in dict(record["format_spec"]).items() if k in known}
        spec["answer_stops"] = tuple(spec.get("answer_stops") or ())
        fmt = ThinkingFormat(**spec)
    return answer_only(fmt) if record.get("budget") == 0 and fmt.no_thinking else fmt


def grade_fields(record: dict, spec: dict, grader: str, fmt: ThinkingFormat, problem: dict | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, judge: JudgeConfig | None = None) -> dict:
    """The graded fields of ``record`` (its stored texts) under the grading ``spec``."""
    protocol = spec["protocol"]
    text = response_text(*(record[f] for f in TEXT_FIELDS), fmt, protocol, spec.get("grade_thinking", False))
    question = None
    if protocol == "s1-harness" and judge is not None and grader == "choice":
        question = judge_question(problem or {})
    result = grade_answer(grader, text, record["gold"], timeout_s=timeout_s, protocol=protocol, judge=judge,
                          benchmark=str(record.get("benchmark", "")), question=question)
    return {"correct": bool(result.correct), "no_answer": bool(result.no_answer),
            "grading_timeout": bool(result.timeout), "prediction": result.prediction, "graded_by": result.route}


def fill_from_store(store: ResultStore, requests: list[dict], specs: list[dict], grader: str, fmt: ThinkingFormat,
                    problems: dict, timeout_s: float = DEFAULT_TIMEOUT_S, judge: JudgeConfig | None = None,
                    provenance: dict | None = None) -> tuple[int, set[str]]:
    """For every request x grading spec missing from ``store`` whose generation is stored under another
    grading, regrade that generation and append the record. Returns (records added, every key now stored).

    The store is a whole study's (gigabytes of thinking text at the paper's scale): its shard indexes are read
    (no text), and only the shards holding a candidate generation (same request but for the prompt text and
    the grading) are parsed, and only when some request x spec is missing."""
    index = store.records(columns=[f for f in KEY_FIELDS if f != "prompt"])  # the indexes only
    have = {r["key"] for r in index}
    missing = [r for r in requests if any(record_key({**r, "grading": s}) not in have for s in specs)]
    if not missing:
        return 0, have
    loose = {_loose_key(r) for r in missing}
    candidates = {r["key"] for r in index if _loose_key(r) in loose}
    wanted, sources = {generation_key(r) for r in missing}, {}
    for record in store.records(keys=candidates) if candidates else ():
        if all(f in record for f in TEXT_FIELDS) and "gold" in record:
            gen = generation_key(record)
            if gen in wanted:
                sources.setdefault(gen, record)
    new = []
    for request in missing:
        source = sources.get(generation_key(request))
        for spec in specs if source is not None else ():
            key = record_key({**request, "grading": spec})
            if key in have:
                continue
            fields = grade_fields(source, spec, grader, record_format(source, fmt), problems.get(source["problem_id"]),
                                  timeout_s, judge if spec.get("protocol") == "s1-harness" else None)
            new.append({**source, **(provenance or {}), **fields, "grading": spec, "key": key,
                        "regraded_from": source["key"]})
            have.add(key)
    store.append(new)
    return len(new), have
