"""The s1-harness judge against a real chat-completions server on 127.0.0.1 (tests/_helpers_judge.py)."""
import ast
import json
import re
import socket
import time

import pytest

from tests._helpers_judge import JudgeServer, chat_reply
from tts_prune.tts.grading import grade_answer
from tts_prune.tts.harness import judge_question
from tts_prune.tts.judge import JudgeConfig, JudgeError, judge_prompts, prompts_hash


def math_judge(body):
    """Answers like a careful judge: option k when the attempt's first number equals option k's number."""
    prompt = body["messages"][0]["content"]
    options = ast.literal_eval(re.findall(r"Options: (\[.*\])\n", prompt)[-1])
    attempt = prompt.rsplit("Attempt: ", 1)[1]
    first = re.search(r"-?\d+(?:\.\d+)?", attempt)
    for k, option in enumerate(options, start=1):
        if first and re.sub(r"[^\d.-]", "", option) == first.group():
            return chat_reply(str(k))
    return chat_reply("-1")


def config(server, tmp_path, **changes):
    return JudgeConfig(**{"base_url": server.base_url, "model": "judge-model", "cache_dir": str(tmp_path / "cache"),
                          "timeout_s": 5.0, "retries": 1, **changes})


def test_math_judge_request_is_the_harness_prompt_and_answers_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with JudgeServer(math_judge) as server:
        judge = config(server, tmp_path, api_key_env="JUDGE_KEY")
        judge.check()
        response = "thinking\n<|im_start|>answer\nFinal Answer: 204\n\nThe walk takes 4 hours at speed 2.5 km/h."
        grade = grade_answer("math", response, "204", protocol="s1-harness", judge=judge, benchmark="aime24")
        assert grade.correct and grade.route == "judge" and grade.prediction == "204"
        body = server.posts()[0]
        attempt = "204\n\nThe walk takes 4 hours at speed 2.5 km/h."          # everything after "Answer:"
        expected = judge_prompts()["aime"]["template"] % {"expression1": "['204']", "expression2": attempt}
        assert body == {"model": "judge-model", "messages": [{"role": "user", "content": expected}],
                        "temperature": 0.5, "max_tokens": 1024}
        post_headers = [h for method, _, h, _ in server.seen if method == "POST"][0]
        assert post_headers["Authorization"] == "Bearer sk-test"
        # same prompt again: served from the disk cache, no request
        again = grade_answer("math", response, "204", protocol="s1-harness", judge=judge, benchmark="aime24")
        assert again == grade and len(server.posts()) == 1
        # the judge says -1 for another number: wrong, the attempt kept as the prediction
        wrong = grade_answer("math", "<|im_start|>answer\nAnswer: 205 km", "204", protocol="s1-harness", judge=judge,
                             benchmark="math500")
        assert not wrong.correct and wrong.prediction == "205 km" and wrong.route == "judge"
        assert "Options: ['204']" in server.posts()[-1]["messages"][0]["content"]
        assert server.posts()[-1]["messages"][0]["content"].startswith(judge_prompts()["math"]["template"][:60])
    # a digit attempt never reaches the judge: integers are compared as integers
    assert grade_answer("math", "\\boxed{0204}", "204", protocol="s1-harness", judge=judge).route == "integer"


def test_gpqa_judge_picks_a_letter_or_the_answer_is_invalid(tmp_path):
    replies = iter(["B", "-1", " C"])  # " C" is not exactly a letter: the harness does not strip, INVALID
    with JudgeServer(lambda body: chat_reply(next(replies))) as server:
        judge = config(server, tmp_path)
        problem = {"id": "q", "question": "Which animal is largest?", "choices": ["Cat", "Elephant", "Dog", "Ant"]}
        question = judge_question(problem)
        assert question == "Which animal is largest?\nAnswer Choices:\n(A) Cat\n(B) Elephant\n(C) Dog\n(D) Ant"
        picked = grade_answer("choice", "<|im_start|>answer\nAnswer: the elephant", "B", protocol="s1-harness",
                              judge=judge, question=question)
        assert picked.correct and picked.prediction == "B" and picked.route == "judge"
        prompt = server.posts()[0]["messages"][0]["content"]
        assert prompt == judge_prompts()["gpqa"]["template"] % {"expression1": question, "expression2": "the elephant"}
        for attempt in ("none of them", "maybe the dog"):
            invalid = grade_answer("choice", f"Answer: {attempt}", "A", protocol="s1-harness", judge=judge,
                                   question=question)
            assert not invalid.correct and invalid.prediction == "INVALID" and invalid.no_answer
        # a bare letter never goes to the judge
        assert grade_answer("choice", "Answer: d", "D", protocol="s1-harness", judge=judge).route == "letter"
        assert len(server.posts()) == 3
        with pytest.raises(ValueError, match="question"):
            grade_answer("choice", "Answer: big one", "A", protocol="s1-harness", judge=config(server, tmp_path / "x"))


def test_http_400_answers_empty_and_5xx_is_retried(tmp_path):
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        if "FOUR-HUNDRED" in body["messages"][0]["content"]:
            return 400, {"error": "bad request"}
        return (500, {"error": "busy"}) if calls["n"] == 1 else chat_reply("1")

    with JudgeServer(flaky) as server:
        judge = config(server, tmp_path, retries=2)
        assert judge.ask("hello") == "1" and calls["n"] == 2          # one 500, then the answer
        assert judge.ask("FOUR-HUNDRED") == ""                        # as the harness: a bad request answers ""


def test_missing_key_fails_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    with JudgeServer(math_judge) as server:
        judge = config(server, tmp_path, api_key_env="NO_SUCH_JUDGE_KEY")
        with pytest.raises(JudgeError, match="NO_SUCH_JUDGE_KEY is not set"):
            judge.check()
        with pytest.raises(JudgeError, match="NO_SUCH_JUDGE_KEY"):
            judge.ask("anything")
        assert server.seen == []


def test_unreachable_server_fails_fast_with_bounded_retries(tmp_path):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=1.0, retries=1,
                        cache_dir=str(tmp_path / "c"))
    began = time.monotonic()
    with pytest.raises(JudgeError, match="does not answer"):
        judge.check()
    with pytest.raises(JudgeError, match="failed 2 time"):
        judge.ask("x")
    assert time.monotonic() - began < 30  # bounded: one retry with a 1 s back-off, never a hang


def test_malformed_reply_and_bad_config_errors_name_the_value(tmp_path):
    with JudgeServer(lambda body: (200, {"nothing": True})) as server:
        with pytest.raises(JudgeError, match="choices"):
            config(server, tmp_path).ask("x")
    with pytest.raises(ValueError, match="base_url"):
        JudgeConfig(base_url="api.openai.com", model="gpt-4o-mini")
    with pytest.raises(ValueError, match="retries"):
        JudgeConfig(base_url="http://127.0.0.1:1/v1", model="m", retries=100)
    with pytest.raises(ValueError, match="unknown"):
        JudgeConfig.from_dict({"base_url": "http://127.0.0.1:1/v1", "model": "m", "key": "sk"})
    assert JudgeConfig.from_dict({}) is None and JudgeConfig.from_dict(None) is None


def test_describe_is_the_key_part_and_never_holds_the_key(monkeypatch):
    monkeypatch.setenv("K", "sk-secret")
    judge = JudgeConfig(base_url="http://127.0.0.1:1/v1/", model="gpt-4o-mini", api_key_env="K")
    described = judge.describe()
    assert described == {"base_url": "http://127.0.0.1:1/v1", "model": "gpt-4o-mini", "temperature": 0.5,
                         "max_tokens": 1024, "seed": None, "prompts": prompts_hash()}
    assert "sk-secret" not in json.dumps(described)


def test_prompts_are_the_harness_files_verbatim():
    prompts = judge_prompts()
    assert set(prompts) == {"math", "aime", "amc", "gpqa", "gpqa_question", "gpqa_prompt"}
    for name in ("math", "aime", "amc", "gpqa"):
        assert prompts[name]["source"].startswith(("OCM-7898/TTS-Pruning@", "simplescaling/s1@"))
        assert prompts[name]["template"].rstrip().endswith("Attempt: %(expression2)s")
    assert "Options: ['12']\n    Attempt: ...$\\boxed{12^{\\mathrm{th}}}$." in prompts["math"]["template"]
    assert "Options: ['11', '100', '50', '-5', '12', '10']" in prompts["aime"]["template"]   # AIME's own example
    assert "Attempt: The answer is 27 miles." in prompts["amc"]["template"]
    assert "Respond only with the capitalized alphabetic letter" in prompts["gpqa"]["template"]
    assert prompts["gpqa_prompt"]["template"] == "{Question}\n\nA) {choice1}\nB) {choice2}\nC) {choice3}\nD) {choice4}"
