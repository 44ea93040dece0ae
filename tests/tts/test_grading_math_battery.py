"""Math grading on real-looking responses (long reasoning, distractors, LaTeX forms); expectations by hand.

Each case is (response, gold, correct?). The response is graded against its gold answer, and the
expected verdict was decided by reading the response as a reviewer would: the stated final answer
(the last box, else the last answer statement, else the last expression) against the gold value.
"""
import pytest

from tts_prune.tts.grading import grade_answer

LONG = ("We start by writing the condition as an equation. Let $x$ be the number of apples. Then "
        "$3x + 4 = 19$, so $3x = 15$ and $x = 5$. But the question asks for the total cost, where each "
        "apple costs \\$2 and the bag costs \\$3. ")

MATH = [
    # long reasoning, then the final statement
    (LONG + "So the total is $5 \\cdot 2 + 3 = 13$.\n\n**Final Answer**\n\\[\n\\boxed{13}\n\\]", "13", True),
    (LONG + "So the total is $5 \\cdot 2 + 3 = 13$.\n\n**Final Answer**\n\\[\n\\boxed{13}\n\\]", "5", False),
    (LONG + "The total is 13 dollars.\n\nFinal Answer: The final answer is $13$. I hope it is correct.", "13", True),
    (LONG + "Total: 13.\n\nFinal Answer:\n13", "13", True),
    (LONG + "Total: 13.\n\nFinal Answer:\n$\\frac{26}{2}$", "13", True),
    (LONG + "Hence the answer is 13 dollars.", "13", True),
    (LONG + "Hence the answer is 13 dollars.", "15", False),
    # an earlier box is a distractor, the last one is the answer
    ("Step 1 gives $\\boxed{12}$ for the width. Step 2: the area is $12 \\times 7 = 84$, so the area is "
     "$\\boxed{84}$.", "84", True),
    ("Step 1 gives $\\boxed{12}$ for the width. Step 2: the area is $12 \\times 7 = 84$, so the area is "
     "$\\boxed{84}$.", "12", False),
    # a box wins over a later stray number (boxed has the top priority)
    ("The answer is $\\boxed{7}$. (This used 3 of the 10 given facts.)", "7", True),
    # an answer cue wins over later unanchored numbers
    ("Answer: 42\n\nCheck: 6 * 7 = 42 and 42 / 2 = 21.", "42", True),
    ("The answer is 12.\nVerification: 3 * 4 = 12, and 12 + 0 = 12, and 2 + 2 = 4.", "12", True),
    # fractions and decimals
    ("Thus the probability is $\\boxed{\\dfrac{5}{12}}$.", "\\frac{5}{12}", True),
    ("Thus the probability is $\\boxed{\\frac{10}{24}}$.", "\\frac{5}{12}", True),
    ("Thus the probability is $\\boxed{0.4167}$.", "\\frac{5}{12}", False),
    ("The ratio is \\boxed{\\tfrac{3}{8}}", "0.375", True),
    ("The slope is $\\boxed{-\\frac{2}{3}}$.", "-\\frac{2}{3}", True),
    ("The slope is $\\boxed{\\frac{2}{3}}$.", "-\\frac{2}{3}", False),
    ("The slope is $\\boxed{\\frac{-2}{3}}$.", "-\\frac{2}{3}", True),
    # negative numbers
    ("Solving, $x = -7$.\n\nThe answer is $-7$.", "-7", True),
    ("Solving, $x = -7$.\n\nThe answer is $7$.", "-7", False),
    # units, degrees, money, percentages
    ("Each interior angle is $\\boxed{108^\\circ}$.", "108", True),
    ("The speed is $\\boxed{15\\text{ m/s}}$.", "15", True),
    ("She pays $\\boxed{\\$18.50}$.", "18.5", True),
    ("The increase is $\\boxed{25\\%}$.", "25", True),
    ("The increase is $\\boxed{20\\%}$.", "25", False),
    # intervals and inequalities
    ("The domain is $\\boxed{(-\\infty, -2) \\cup (3, \\infty)}$.", "(-\\infty,-2)\\cup(3,\\infty)", True),
    ("The domain is $\\boxed{(-\\infty, -2] \\cup (3, \\infty)}$.", "(-\\infty,-2)\\cup(3,\\infty)", False),
    ("The solution set is $\\boxed{[0, 1]}$.", "[0,1]", True),
    # sets, lists of roots, tuples
    ("The roots are $\\boxed{2, -3}$.", "-3, 2", True),
    ("The roots are $x = 2$ and $x = -3$, so the answer is $\\boxed{-3, 2}$.", "2,-3", True),
    ("The roots are $\\boxed{2, 3}$.", "-3, 2", False),
    ("The point is $\\boxed{(1, -2)}$.", "(1,-2)", True),
    ("The point is $\\boxed{(-2, 1)}$.", "(1,-2)", False),
    # radicals, pi, powers
    ("The distance is $\\boxed{2\\sqrt{5}}$.", "\\sqrt{20}", True),
    ("The distance is $\\boxed{\\sqrt{5}}$.", "2\\sqrt{5}", False),
    ("The area is $\\boxed{16\\pi}$ square units.", "16\\pi", True),
    ("The area is $\\boxed{8\\pi}$ square units.", "16\\pi", False),
    ("There are $\\boxed{3^4}$ ways.", "81", True),
    # AIME-style integers
    ("Therefore $m + n = \\boxed{033}$.", "33", True),
    ("Therefore $m + n = \\boxed{33}$.", "033", True),
    ("Therefore $m + n = \\boxed{133}$.", "33", False),
    # an equation in the box: the right-hand side is the value
    ("So $\\boxed{x = 5}$.", "5", True),
    ("So $\\boxed{x = 6}$.", "5", False),
    # text answers and a choice letter written as math
    ("The day is $\\boxed{\\text{Wednesday}}$.", "\\text{Wednesday}", True),
    ("So the matching choice is $\\boxed{\\text{(B)}}$.", "\\text{(B)}", True),
    ("So the matching choice is $\\boxed{\\text{(C)}}$.", "\\text{(B)}", False),
    # expressions
    ("Expanding, the polynomial is $\\boxed{x^2 - 5x + 6}$.", "(x-2)(x-3)", True),
    ("Expanding, the polynomial is $\\boxed{x^2 - 5x - 6}$.", "(x-2)(x-3)", False),
    # no answer at all
    ("Let me think about this problem. We need the sum of the digits of the answer.", "5", False),
]

NO_ANSWER = [
    "Let me think about this problem carefully before writing anything.",
    "",
    "I cannot solve this.",
]


@pytest.mark.parametrize("response,gold,expected", MATH)
def test_math_battery(response, gold, expected):
    grade = grade_answer("math", response, gold)
    assert grade.timeout is False
    assert grade.correct is expected


def test_math_battery_size():
    assert len(MATH) >= 40


@pytest.mark.parametrize("response", NO_ANSWER)
def test_no_answer(response):
    grade = grade_answer("math", response, "5")
    assert grade == type(grade)(correct=False, prediction=None, no_answer=True, timeout=False)


@pytest.mark.parametrize("response,prediction", [
    ("first $\\boxed{3}$ then corrected: $\\boxed{4}$", "4"),
    ("Final Answer:\n$\\frac{3}{4}$", "\\frac{3}{4}"),
    ("Answer: 42", "42"),
    ("The answer is 12.", "12"),
    ("blah \\boxed{\\frac{1}{2}} blah", "\\frac{1}{2}"),
])
def test_math_prediction_is_the_extracted_text(response, prediction):
    assert grade_answer("math", response, "0").prediction == prediction
