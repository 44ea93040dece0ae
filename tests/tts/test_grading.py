"""Grading on tricky real-looking (response, gold, expected) triples, each checked independently."""
import threading

import pytest

from tts_prune.tts.grading import extract_answer, extract_letter, grade_choice, grade_math, grade_numeric, last_boxed

MATH = [
    ("So the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac12", True),
    ("Thus \\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", True),
    ("\\boxed{0.75}", "\\frac{2}{3}", False),
    ("\\boxed{025}", "25", True),                      # AIME leading zeros
    ("\\boxed{25}", "025", True),
    ("\\boxed{250}", "25", False),
    ("\\boxed{[2, 5)}", "[2,5)", True),                # intervals
    ("\\boxed{(2,5)}", "[2,5)", False),
    ("\\boxed{(-\\infty, 3]}", "(-\\infty,3]", True),
    ("\\boxed{90^\\circ}", "90", True),                # degrees
    ("\\boxed{90}", "90^\\circ", True),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", True),
    ("\\boxed{\\text{Tuesday}}", "\\text{Monday}", False),
    ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}", True),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{2}}{2}", False),
    ("\\boxed{2\\pi}", "2\\pi", True),
    ("\\boxed{6.28}", "2\\pi", False),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("\\boxed{x^2+1}", "(x+1)^2", False),
    ("first \\boxed{3} then corrected: \\boxed{4}", "4", True),   # last boxed wins
    ("first \\boxed{4} then corrected: \\boxed{3}", "4", False),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    ("Final Answer: 17", "17", True),
    ("The answer is 18.", "17", False),
    ("Final Answer: $\\frac{7}{2}$", "3.5", True),
    ("\\boxed{-3}", "-3", True),
    ("\\boxed{3}", "-3", False),
    ("\\boxed{10\\%}", "10", True),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", True),
    ("no answer here at all", "5", False),
    ("\\boxed{1,2,3}", "1, 2, 3", True),
    ("\\boxed{2^{10}}", "1024", True),
    ("\\boxed{1023}", "1024", False),
]

NUMERIC = [
    ("She makes 9 * 2 = 18 dollars.\n#### 18", "18", True),
    ("Total is 1,000 apples. Final Answer: 1,000", "#### 1000", True),
    ("so 18.0 dollars", "18", True),
    ("she makes $18.", "18", True),
    ("that is 17 or maybe 19", "18", False),
    ("\\boxed{72}", "72", True),
    ("The answer is -4", "-4", True),
    ("The answer is 4", "-4", False),
]

CHOICE = [
    ("The answer is (C).", "C", True),
    ("Final Answer: C", "(C)", True),
    ("\\boxed{B}", "B", True),
    ("\\boxed{(D)}", "D", True),
    ("I think A is wrong, so the answer is B", "A", False),
    ("Answer: D", "C", False),
]


@pytest.mark.parametrize("response,gold,expected", MATH)
def test_math(response, gold, expected):
    assert grade_math(response, gold) is expected


@pytest.mark.parametrize("response,gold,expected", NUMERIC)
def test_numeric(response, gold, expected):
    assert grade_numeric(response, gold) is expected


@pytest.mark.parametrize("response,gold,expected", CHOICE)
def test_choice(response, gold, expected):
    assert grade_choice(response, gold) is expected


def test_enough_cases():
    assert len(MATH) + len(NUMERIC) + len(CHOICE) >= 40


def test_extraction_helpers():
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{x") is None
    assert extract_answer("blah. Final Answer: 42.") == "42"
    assert extract_letter("\\boxed{C}") == "C"


def test_grading_works_outside_the_main_thread():
    # math-verify's default SIGALRM timeouts raise in worker threads; ours are disabled.
    out = []
    thread = threading.Thread(target=lambda: out.append(grade_math("\\boxed{\\frac{1}{2}}", "0.5")))
    thread.start()
    thread.join()
    assert out == [True]


def test_bad_gold_errors_name_the_value():
    with pytest.raises(ValueError, match="'abc'"):
        grade_numeric("5", "abc")
    with pytest.raises(ValueError, match="'CC'"):
        grade_choice("C", "CC")
