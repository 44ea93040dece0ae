"""Benchmark registry, loaders (on the shared copies when present), user files, GPQA shuffling, `data`."""
import gzip
import json
import random

import pytest

from tts_prune import paths
from tts_prune.tts import benchmarks
from tts_prune.tts.benchmarks import (BENCHMARKS, fetch, gpqa_openai_problems, gpqa_problem, load_benchmark,
                                      load_user_file, redact)
from tts_prune.tts.evaluation import grade

SHARED = paths.SHARED_BENCHMARK_DIR
need_shared = pytest.mark.skipif(not (SHARED / "math500.jsonl").exists(), reason="no shared benchmark copies")


@pytest.fixture
def filled(tmp_path, monkeypatch):
    fetch(tmp_path, SHARED, show_progress=False)
    monkeypatch.setattr(paths, "BENCHMARK_DIR", tmp_path)
    return tmp_path


@need_shared
def test_data_copies_every_file_and_loaders_read_them(filled):
    # two GPQA variants (kit prompt, harness prompt) read one file
    assert sorted(p.name for p in filled.iterdir()) == sorted({f for b in BENCHMARKS.values() for f in b.files})
    sizes = {"math500": 500, "aime24": 30, "amc23": 40, "gpqa-diamond": 198, "gpqa-diamond-openai": 198,
             "gsm8k": 1319}
    for name, size in sizes.items():
        problems = load_benchmark(name)
        assert len(problems) == size and len({p["id"] for p in problems}) == size
        assert all(p["problem"] and p["answer"] != "" for p in problems)
    gsm = load_benchmark("gsm8k", limit=1)[0]
    assert gsm["answer"] == "18" and grade("gsm8k", "so she makes \\boxed{18} dollars", gsm["answer"])
    aime = load_benchmark("aime24")
    assert all(len(p["answer"]) <= 3 for p in aime)
    assert fetch(filled, SHARED, show_progress=False) == []          # idempotent


@need_shared
def test_gpqa_shuffle_is_fixed_and_gold_letter_points_at_correct_answer(filled):
    with gzip.open(filled / "gpqa_diamond.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle][:20]
    letters = []
    for row in rows:
        problem = gpqa_problem(row)
        assert problem == gpqa_problem(dict(row))                   # deterministic
        assert problem["choices"]["ABCD".index(problem["answer"])] == row["Correct Answer"].strip()
        assert row["Question"].strip()[:30] not in redact(problem)  # never printable
        letters.append(problem["answer"])
    assert len(set(letters)) > 1                                     # not always the same position
    assert BENCHMARKS["gpqa-diamond"].secret


def _gpqa_rows(n):
    return [{"Question": f" Q{i}? ", "Correct Answer": f"right{i}", "Incorrect Answer 1": f"w{i}a",
             "Incorrect Answer 2": f"w{i}b", "Incorrect Answer 3": f"w{i}c"} for i in range(n)]


def test_gpqa_openai_is_the_harness_prompt_and_its_seeded_shuffle():
    import random

    rows = _gpqa_rows(12)
    problems = gpqa_openai_problems(rows, seed=0)
    # Their process_docs, transcribed: the global `random` seeded once, one shuffle per row in file order.
    random.seed(0)
    for row, problem in zip(rows, problems):
        choices = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"], row["Correct Answer"]]
        random.shuffle(choices)
        assert problem["choices"] == choices
        assert problem["answer"] == "ABCD"[choices.index(row["Correct Answer"])]
        assert problem["problem"] == (f"{row['Question']}\n\nA) {choices[0]}\nB) {choices[1]}\nC) {choices[2]}"
                                      f"\nD) {choices[3]}")              # no instruction, texts unstripped
        assert problem["id"] == gpqa_problem(row)["id"]                # same ids as the kit's GPQA prompt
    assert len({p["answer"] for p in problems}) > 1
    assert [p["answer"] for p in gpqa_openai_problems(rows, seed=1)] != [p["answer"] for p in problems]
    assert BENCHMARKS["gpqa-diamond-openai"].secret and BENCHMARKS["gpqa-diamond-openai"].grader == "choice"


def test_procedural_and_toy_sets_need_no_files():
    chain = load_benchmark("chain_sum", limit=5, seed=3)
    assert len(chain) == 5 and chain == load_benchmark("chain_sum", limit=5, seed=3)
    for p in chain:  # the answer is the arithmetic value of the expression in the question
        expression = p["problem"].split(":")[-1].split("=")[0]
        assert str(eval(expression)) == p["answer"]  # noqa: S307 - digits and +/- only
    toy = load_benchmark("toy-reasoning", limit=4)
    assert len(toy) == 4 and all(p["answer"].lstrip("-").isdigit() for p in toy)
    assert grade("toy-reasoning", f"\\boxed{{{toy[0]['answer']}}}", toy[0]["answer"])


def test_user_file_errors_name_file_and_line(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "Pick", "answer": "B", "choices": ["x", "y"]}\n')
    problems = load_user_file(good)
    assert [p["id"] for p in problems] == ["mine-1", "mine-2"] and "(B) y" in problems[1]["problem"]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"problem": "a", "answer": "1"}\n{"problem": oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: bad JSON"):
        load_benchmark(str(bad_json))
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"problem": "a"}\n')
    with pytest.raises(ValueError, match=r"missing.jsonl:1: missing field\(s\) \['answer'\]"):
        load_benchmark(str(missing))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"problem": "caf\xe9", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.jsonl:1: not UTF-8"):
        load_benchmark(str(latin))
    with pytest.raises(ValueError, match="'nope'"):
        load_benchmark("nope")


def test_missing_files_say_make_data(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BENCHMARK_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make data"):
        load_benchmark("math500")
    assert not benchmarks.available("math500") and benchmarks.available("chain_sum")
