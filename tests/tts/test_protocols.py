"""The same stored responses graded under both protocols (kit, s1-harness), the cue fix, and regrading."""
import json

import pytest
import torch

from tests._helpers_eval import toy_pair
from tests._helpers_judge import JudgeServer, chat_reply
from tts_prune.tts import evaluation
from tts_prune.tts.formats import FORMATS
from tts_prune.tts.grading import grade_answer
from tts_prune.tts.harness import harness_extract, harness_split, last_boxed_only, remove_boxed
from tts_prune.tts.judge import JudgeConfig
from tts_prune.tts.regrade import fill_from_store, generation_key, grading_spec, response_text
from tts_prune.tts.results import ResultStore, load_results, record_key

torch.set_num_threads(1)
S1_CAP = "\n<|im_start|>answer\nFinal Answer:"  # what s1's budget forcing appends at the cap

# (name, format, thinking, forced, answer, capped, gold, kit correct?, harness (offline) correct?, harness route)
# Every expectation is worked out by hand from the two protocols' rules, in the comment.
CASES = [
    # The cue fix: the model continued "Final Answer:"; the kit reads 204 (not the last number 2.5), the harness
    # takes everything after "Answer:", which is no integer, so its judge (offline: math-verify on the split) decides.
    ("s1 capped, unboxed", "s1", "speed s = 2.5 so", S1_CAP, " 204\n\nThe walk takes 4 hours at speed 2.5 km/h.",
     True, "204", True, True, "fallback-math-verify"),
    # Natural stop: s1 forces "<|im_start|>answer", the model writes "\n..."; both read the last box, 204.
    ("s1 natural, boxed", "s1", "maybe \\boxed{200}? no", "<|im_start|>answer", "\nThe answer is \\boxed{204}.",
     False, "204", True, True, "integer"),
    # Leading zeros: the harness compares digit strings as integers.
    ("s1 capped, 0204", "s1", "hmm", S1_CAP, " 0204", True, "204", True, True, "integer"),
    # Qwen3 cut at the cap: the kit grades the answer only (nothing there); the harness has no split token and
    # grades the whole response, so the box inside the thinking counts.
    ("qwen3 capped, box in thinking", "qwen3", "so the total is \\boxed{204} I think", "\n</think>\n\n",
     "I could not finish.", True, "204", False, True, "integer"),
    ("qwen3 natural, boxed answer", "qwen3", "\\boxed{7} was wrong", "</think>", "\n\nSo \\boxed{204}", False,
     "204", True, True, "integer"),
    # GPQA: "**B**" after the cue; the kit's anchored letters read "Final Answer: **B**"; the harness's
    # "Answer:" match is "**B**\n\nExplanation..." (no letter), so the judge / the offline letter extractor decides.
    ("s1 capped, **B**", "s1", "A fails.", S1_CAP, " **B**\n\nExplanation: option A fails the units check.", True,
     "B", True, True, "fallback-letter"),
    ("s1 natural, lower-case letter", "s1", "think", "<|im_start|>answer", "\nAnswer: b", False, "B", True, True,
     "letter"),
    # Qwen3 GPQA with the choice stated only in the thinking: the kit sees no answer, the harness reads it whole.
    ("qwen3 capped, letter in thinking", "qwen3", "Checking each: (B) is correct.", "\n</think>\n\n", "", True, "B",
     False, True, "fallback-letter"),
    # Nothing chosen: INVALID under the harness (never a default letter), no answer under the kit.
    ("s1 natural, no letter", "s1", "think", "<|im_start|>answer", "\nI am not sure.", False, "A", False, False,
     "fallback-letter"),
]


def _kind(gold):
    return "choice" if gold.isalpha() else "math"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_response_under_both_protocols(case):
    _, fmt, thinking, forced, answer, capped, gold, kit_ok, harness_ok, route = case
    fmt = FORMATS[fmt]
    kit = grade_answer(_kind(gold), response_text(thinking, forced, answer, capped, fmt, "kit"), gold)
    harness = grade_answer(_kind(gold), response_text(thinking, forced, answer, capped, fmt, "s1-harness"), gold,
                           protocol="s1-harness")
    assert (kit.correct, harness.correct, harness.route) == (kit_ok, harness_ok, route)
    if _kind(gold) == "choice":
        assert harness.prediction in ("A", "B", "C", "D", "INVALID")   # a letter or INVALID, never a default


def test_the_cue_fix_on_the_issue_examples():
    s1, generic = FORMATS["s1"], FORMATS["generic"]
    walk = " 204\n\nThe walk takes 4 hours at speed 2.5 km/h."
    letter = " **B**\n\nExplanation: the other options fail."
    for fmt in (s1, generic):  # every format that appends a cue
        assert fmt.answer_cue
        assert grade_answer("math", response_text("t", "", walk, True, fmt), "204").correct
        assert grade_answer("numeric", response_text("t", "", walk, True, fmt), "204").correct
        assert grade_answer("choice", response_text("t", "", letter, True, fmt), "B").correct
    # without the cue (the old graded text) both were lost: read as 2.5 and as no answer
    assert grade_answer("math", walk, "204").prediction == "2.5"
    assert grade_answer("choice", letter, "B").no_answer
    # a natural stop appends no cue: nothing is added to the answer
    assert response_text("t", "<|im_start|>answer", "\nx", False, s1) == "\nx"


def test_harness_split_and_extraction_rules():
    assert harness_split("a<|im_start|>answer\nb<|im_start|>answer\nc") == "c"
    assert harness_split("think<|im_start|>answer Final: 3\nline two") == "line two"   # first line dropped
    assert harness_split("think<|im_start|>answer") == "answer"                         # no newline: kept
    assert harness_split("<think>x</think>\n\nall of it") == "<think>x</think>\n\nall of it"
    assert harness_extract("x \\boxed{\\frac{1}{2}} y")[0] == "\\frac{1}{2}"
    assert harness_extract("\\boxed 5$ then \\boxed{6}")[0] == "5"                    # the space form wins
    assert remove_boxed(last_boxed_only("\\fbox{7}")) == ""                              # \fbox gives ""
    assert harness_extract("\\boxed{7")[0] == "\\boxed{7"                                 # unclosed: the text itself
    # DOTALL: one match, everything after the FIRST "Answer:"
    assert harness_extract("Answer: 5\nlater, Answer: 6") == ("5\nlater, Answer: 6", True)
    assert harness_extract("no statement") == ("no statement", False)


def _record(case, benchmark):
    _, fmt, thinking, forced, answer, capped, gold, *_ = case
    return {"model": "m", "model_hash": "h", "recipe": {}, "benchmark": benchmark, "problem_id": case[0],
            "prompt": "p", "format_spec": FORMATS[fmt].describe(), "decoding": {}, "backend": "transformers",
            "seed": 0, "budget": 64, "thinking": thinking, "forced": forced, "answer": answer, "capped": capped,
            "gold": gold, "correct": None}


def test_stored_responses_regraded_under_both_protocols_with_a_judge(tmp_path):
    """A store graded under kit, regraded under s1-harness with a judge on 127.0.0.1: the numbers each defines."""
    store = ResultStore(tmp_path / "r")
    math_cases, choice_cases = [c for c in CASES if not c[6].isalpha()], [c for c in CASES if c[6].isalpha()]
    problems = {c[0]: {"id": c[0], "question": "Q?", "choices": ["w", "x", "y", "z"]} for c in CASES}
    kit_spec = grading_spec("kit")
    for cases, benchmark, kind in ((math_cases, "aime24", "math"), (choice_cases, "gpqa-diamond-openai", "choice")):
        records = []
        for case in cases:
            record = _record(case, benchmark)
            text = response_text(record["thinking"], record["forced"], record["answer"], record["capped"],
                                 FORMATS[case[1]], "kit")
            records.append({**record, "grading": kit_spec, "correct": grade_answer(kind, text, case[6]).correct})
        store.append(records)

    def judge_reply(body):  # a judge that finds 204 / letter B where a reader would, else -1
        attempt = body["messages"][0]["content"].rsplit("Attempt: ", 1)[1]
        if "Options: ['204']" in body["messages"][0]["content"]:
            return chat_reply("1" if attempt.lstrip().startswith("204") else "-1")
        return chat_reply("B" if "**B**" in attempt or "(B) is correct" in attempt else "-1")

    with JudgeServer(judge_reply) as server:
        judge = JudgeConfig(base_url=server.base_url, model="j", cache_dir=str(tmp_path / "cache"))
        spec = grading_spec("s1-harness", judge=judge)
        for cases, kind in ((math_cases, "math"), (choice_cases, "choice")):
            requests = [{k: v for k, v in _record(c, "aime24" if kind == "math" else "gpqa-diamond-openai").items()}
                        for c in cases]
            added, keys = fill_from_store(store, requests, [kit_spec, spec], kind, None, problems, judge=judge)
            assert added == len(cases)                     # kit records exist; only the harness ones are new
            assert keys == set(load_results(store.root)["key"])
            assert fill_from_store(store, requests, [spec], kind, None, problems, judge=judge)[0] == 0
        posts = len(server.posts())
    frame = load_results(store.root)
    harness = frame[frame["grading"].map(lambda g: g["protocol"]) == "s1-harness"].set_index("problem_id")
    kit = frame[frame["grading"].map(lambda g: g["protocol"]) == "kit"].set_index("problem_id")
    for name, *_, kit_ok, harness_ok, route in CASES:
        judged = route.startswith("fallback")                  # where the offline run fell back, the judge answered
        assert bool(kit.loc[name, "correct"]) == kit_ok, name
        assert harness.loc[name, "graded_by"] == ("judge" if judged else route), name
        assert bool(harness.loc[name, "correct"]) == harness_ok, name
        assert harness.loc[name, "regraded_from"] == kit.loc[name, "key"]
        assert harness.loc[name, "answer"] == kit.loc[name, "answer"]     # the same stored response
    assert harness.loc["s1 natural, no letter", "prediction"] == "INVALID"
    assert posts == sum(r.startswith("fallback") for *_, r in CASES)     # the judge only where the rules ask it
    assert all(g["judge"]["model"] == "j" for g in harness["grading"])


class CountingEngine:
    """Wraps a backend engine and counts its sweeps (generation), to show regrading generates nothing."""

    def __init__(self, engine, counter):
        self.engine, self.counter = engine, counter

    def sweep(self, *args, **kwargs):
        self.counter.append(1)
        return self.engine.sweep(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.engine, name)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    from tts_prune.tts import engine as engines

    real = engines.open_backend
    monkeypatch.setattr(engines, "open_backend", lambda *a, **k: CountingEngine(real(*a, **k), calls))
    return calls


def test_evaluate_grades_each_record_under_each_protocol_and_generates_once(tmp_path, counted):
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"{i}+{i}=?", "answer": str(2 * i)}) + "\n"
                            for i in range(3)))
    pair = toy_pair(seed=0, logit_scale=40.0)
    kwargs = dict(out=tmp_path / "r", model_name="tiny", thinking_format="toy", answer_tokens=3, show_progress=False)
    kit = evaluation.evaluate(pair, str(data), [2, 6], **kwargs)
    generated = len(counted)
    assert generated >= 1 and set(kit["grading"].map(lambda g: g["protocol"])) == {"kit"}
    both = evaluation.evaluate(pair, str(data), [2, 6], grading=["kit", "s1-harness"], **kwargs)
    assert len(counted) == generated                       # the harness records are regraded, not generated
    assert len(both) == 12 and both["key"].nunique() == 12
    for (_, _, _), group in both.groupby(["problem_id", "budget", "seed"]):
        assert sorted(g["protocol"] for g in group["grading"]) == ["kit", "s1-harness"]
        assert group["answer"].nunique() == 1 and group["thinking"].nunique() == 1
        for _, row in group.iterrows():                    # recomputed from the stored texts, per protocol
            protocol = row["grading"]["protocol"]
            text = row["answer"] if protocol == "kit" else row["thinking"] + row["forced"] + row["answer"]
            assert row["correct"] == grade_answer("math", text, row["gold"], protocol=protocol).correct
    harness = both[both["grading"].map(lambda g: g["protocol"]) == "s1-harness"]
    assert (harness["grading"].map(lambda g: g["judge"]) == "fallback-kit-grader").all()
    assert harness["graded_by"].isin(["integer", "fallback-math-verify"]).all()
    # a store written before protocols existed (grading without "protocol"): regraded with the cue fix, not generated
    store = ResultStore(tmp_path / "old")
    old = [{**r, "grading": {"grade_thinking": False}} for r in ResultStore(tmp_path / "r").records()
           if r["grading"]["protocol"] == "kit"]
    store.append([{**r, "key": record_key(r)} for r in old])
    again = evaluation.evaluate(pair, str(data), [2, 6], **{**kwargs, "out": tmp_path / "old"})
    assert len(counted) == generated and len(again) == 6
    assert set(again["regraded_from"]) == {record_key(r) for r in old}
    assert {generation_key(r) for r in old} == {generation_key(r) for r in again.to_dict("records")}


def test_protocol_errors_name_the_value():
    with pytest.raises(ValueError, match="'s2-harness' is unknown"):
        grade_answer("math", "\\boxed{1}", "1", protocol="s2-harness")
    with pytest.raises(ValueError, match="distinct"):
        evaluation.evaluate(None, "x", [1], grading=["kit", "kit"])


def test_public_grade_and_the_cli_name_the_protocol(tmp_path):
    import tts_prune
    from tts_prune.cli import main

    s1_capped = "so\n<|im_start|>answer\nFinal Answer: 204\n\nThe walk takes 4 hours at speed 2.5 km/h."
    assert tts_prune.grade("aime24", s1_capped, "204", protocol="s1-harness")
    assert not tts_prune.grade("aime24", "unsure", "204")   # kit: the caller passes the answer part (graded_text)
    assert tts_prune.grade("aime24", "Let me see: \\boxed{204}\n</think>\n\nunsure", "204", protocol="s1-harness")
    # `tts-prune eval --grading kit,s1-harness`: one generation, both gradings; a dead judge fails before generating
    model, tok = toy_pair(seed=0, logit_scale=40.0)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps({"id": "q0", "problem": "1+1=?", "answer": "2"}) + "\n")
    common = ["eval", "--model", str(tmp_path / "m"), "--benchmark", str(data), "--budgets", "4", "--answer-tokens",
              "3", "--format", "toy", "--backend", "transformers", "--out", str(tmp_path / "r")]
    assert main(common + ["--grading", "kit,s1-harness"]) == 0
    assert sorted(g["protocol"] for g in load_results(tmp_path / "r")["grading"]) == ["kit", "s1-harness"]
    from tts_prune.tts.judge import JudgeError

    with pytest.raises(JudgeError, match="does not answer"):
        main(common + ["--grading", "s1-harness", "--judge-url", "http://127.0.0.1:9/v1"])
    assert len(load_results(tmp_path / "r")) == 2


def _their_extraction(a: str) -> str:
    """Transcription of the harness's steps for one result (tasks/openai_math/utils.py in OCM-7898/TTS-Pruning:
    the split in process_results, last_boxed_only_string, the authors' remove_boxed, ANSWER_PATTERN), kept
    deliberately literal as the oracle for tts_prune.tts.harness."""
    import re

    split_tokens = ["<|im_start|>answer\n", "<|im_start|>"]
    if split_tokens[0] in a:
        a = a.split(split_tokens[0])[-1]
    elif split_tokens[1] in a:
        a = a.split(split_tokens[1])[-1]
        if "\n" in a:
            a = "\n".join(a.split("\n")[1:])

    def last_boxed_only_string(string):
        idx = string.rfind("\\boxed")
        if "\\boxed " in string:
            return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
        if idx < 0:
            idx = string.rfind("\\fbox")
            if idx < 0:
                return None
        i, right, depth = idx, None, 0
        while i < len(string):
            if string[i] == "{":
                depth += 1
            if string[i] == "}":
                depth -= 1
                if depth == 0:
                    right = i
                    break
            i += 1
        return None if right is None else string[idx:right + 1]

    def remove_boxed(s):
        if not s:
            return ""
        if "\\boxed " in s:
            return s[len("\\boxed "):] if s[:len("\\boxed ")] == "\\boxed " else ""
        if s[:len("\\boxed{")] != "\\boxed{" or s[-1] != "}":
            return ""
        return s[len("\\boxed{"):-1]

    if (box := last_boxed_only_string(a)) is not None:
        a = remove_boxed(box)
    elif (matches := re.findall(r"(?i)Answer\s*:\s*(.*)", a, re.DOTALL)) != []:
        a = matches[-1]
    return a


def test_harness_extraction_equals_a_transcription_of_theirs_on_random_texts():
    import random

    pieces = ["<|im_start|>", "answer", "\n", "answer\n", "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "$", "Answer:",
              "ANSWER :", "Final Answer: ", " ", "12", "x", "\\frac{1}{2}", "think", "</think>", "B", "**"]
    rng = random.Random(20)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) for _ in range(3000)]
    for text in texts:
        assert harness_extract(harness_split(text))[0] == _their_extraction(text), repr(text)
