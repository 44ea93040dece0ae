"""Grading on tricky real-looking (response, gold, expected) triples, each checked independently."""
import threading

import pytest

from tts_prune.tts.grading import after_cue, extract_answer, extract_letter, grade_answer, last_boxed

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

# GSM8K-style: (response, gold, the number a reader takes as the answer, correct?)
NUMERIC_READ = [
    ("Natalia sold 48 clips in April and half as many in May: 48 / 2 = 24. In total 48 + 24 = 72.\n#### 72",
     "72", "72", True),
    ("Weng earns 12 / 60 = 0.2 per minute, so 0.2 * 50 = 10.\nThe answer is 10.", "10", "10", True),
    ("Betty has 100 / 2 = 50. She needs 100 - 50 - 15 - 30 = 5 more.\n\nFinal Answer: 5", "5", "5", True),
    ("The answer is 18 dollars per week, or 72 per month.", "18", "18", True),
    ("The answer is 9 * 2 = 18.", "18", "18", True),
    ("So the total cost is $\\boxed{\\$1,250.00}$.", "1250", "1,250.00", True),
    ("Final Answer: $1,250", "1250", "1,250", True),
    ("She has 5 + 3 = 8 apples left.\n\n8", "8", "8", True),
    ("First 20% of 50 is 10, then 50 - 10 = 40. So 40 remain.", "40", "40", True),
    ("He loses 7 - 11 = -4 points. The answer is -4.", "-4", "-4", True),
    ("The answer is 4 points lost.", "-4", "4", False),
    ("Answer:\n36", "36", "36", True),
    ("\\boxed{x = 14}", "14", "14", True),
    ("After the first week: 3. After the second: 9.\n#### 9\nCheck: 3 * 3 = 9, 9 + 1 = 10.", "9", "9", True),
    ("There were 2 boxes of 12, so 24 pencils. Given away 5, that leaves 19 pencils.", "19", "19", True),
    ("There were 2 boxes of 12, so 24 pencils. Given away 5, that leaves 19 pencils.", "24", "19", False),
    ("The total is 1.5 hours, i.e. 90 minutes.\nThe answer is 90", "90", "90", True),
    ("I am not sure how to compute this.", "3", None, False),
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
    assert grade_answer("math", response, gold).correct is expected


@pytest.mark.parametrize("response,gold,expected", NUMERIC)
def test_numeric(response, gold, expected):
    assert grade_answer("numeric", response, gold).correct is expected


@pytest.mark.parametrize("response,gold,expected", CHOICE)
def test_choice(response, gold, expected):
    assert grade_answer("choice", response, gold).correct is expected


@pytest.mark.parametrize("response,gold,read,expected", NUMERIC_READ)
def test_numeric_reads_the_final_number(response, gold, read, expected):
    grade = grade_answer("numeric", response, gold)
    assert (grade.prediction, grade.correct, grade.no_answer) == (read, expected, read is None)


def test_after_cue_reads_the_cue_that_ends_last():
    # Issue 9: an absent cue scored -1 + len(cue) and beat the real match, so both of these gave None.
    assert after_cue("Answer: 42") == "42"
    assert after_cue("The answer is 12.") == "12"
    assert after_cue("The answer is 3.\nFinal Answer:\n7") == "7"
    assert after_cue("no cue here") is None


def test_enough_cases():
    assert len(MATH) + len(NUMERIC) + len(CHOICE) >= 40


def test_extraction_helpers():
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{x") is None
    assert extract_answer("blah. Final Answer: 42.") == "42"
    assert extract_letter("\\boxed{C}") == "C"


def test_grading_works_outside_the_main_thread():
    # math-verify's default SIGALRM timeouts raise in worker threads; ours run in a worker process.
    out = []
    thread = threading.Thread(target=lambda: out.append(grade_answer("math", "\\boxed{\\frac{1}{2}}", "0.5").correct))
    thread.start()
    thread.join()
    assert out == [True]


def test_grade_answer_errors_name_the_value():
    with pytest.raises(ValueError, match="'essay'"):
        grade_answer("essay", "x", "y")
    with pytest.raises(ValueError, match="gold answer ''"):
        grade_answer("math", "\\boxed{2}", "")
    with pytest.raises(ValueError, match="'abc'"):
        grade_answer("numeric", "5", "abc")
    with pytest.raises(ValueError, match="'CC'"):
        grade_answer("choice", "C", "CC")
