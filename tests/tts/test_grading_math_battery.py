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
    # --- issue 20: how people state a final answer (new real-looking cases). Where a peer reads differently
    # (Math-Verify's parse alone, lighteval's any_match, the s1 harness's judge), the comment says which and why.
    # Exact value, then its decimal approximation: the exact value is the answer (Math-Verify alone reads the
    # whole relation "X \approx Y" and matches nothing; lighteval's any_match may fall through to Y).
    ("The answer is $\\left(\\frac{1}{3}, \\frac{2}{3}\\right) \\approx (0.333, 0.667)$.",
     "\\left(\\frac{1}{3}, \\frac{2}{3}\\right)", True),
    ("The interval is $[\\sqrt{2}, 3) \\approx [1.414, 3)$.", "[\\sqrt{2}, 3)", True),
    ("\\boxed{\\frac{1}{3} \\approx 0.333}", "\\frac13", True),
    ("Final Answer: $\\frac{\\sqrt{2}}{2} \\approx 0.7071$", "\\frac{\\sqrt2}{2}", True),
    ("The answer is $\\pi/4 \\approx 0.785$.", "\\frac{\\pi}{4}", True),
    ("The answer is $\\boxed{\\begin{pmatrix} 0.5 \\\\ 1 \\end{pmatrix}}$.", "\\begin{pmatrix} \\frac12 \\\\ 1 \\end{pmatrix}", True),
    # An approximation alone, where the exact value is asked: wrong (the judge prompt's 0.33 = 33/100 example is
    # an exact decimal; 0.333 is not 1/3).
    ("So the answer is $(0.333, 0.667)$.", "\\left(\\frac{1}{3}, \\frac{2}{3}\\right)", False),
    ("The final answer is $[1.414, 3)$.", "[\\sqrt{2}, 3)", False),
    ("The answer is approximately $0.785$.", "\\frac{\\pi}{4}", False),
    # exact decimals inside tuples, intervals and matrices are the same values
    ("\\boxed{(0.5, 2)}", "\\left(\\frac12, 2\\right)", True),
    ("\\boxed{[0.5, \\infty)}", "[\\frac12, \\infty)", True),
    ("Final answer: $\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 2 \\end{pmatrix}$",
     "\\begin{pmatrix} \\frac{1}{2} & 0 \\\\ 0 & 2 \\end{pmatrix}", True),
    ("The answer is $\\boxed{\\begin{pmatrix} 1/2 \\\\ 3 \\end{pmatrix}}$.", "\\begin{pmatrix} \\frac{1}{2} \\\\ 3 \\end{pmatrix}", True),
    ("\\boxed{(0.5, 3)}", "\\left(\\frac12, 2\\right)", False),
    # an inequality for an interval: a reader accepts it, math-verify does not equate a relation with a set; kept
    # strict here (the judge would credit it) and said so
    ("Answer: $2 < x \\le 5$", "(2,5]", False),
    ("Answer: $x \\in (2, 5]$", "(2,5]", True),
    # markdown bold around the value (Math-Verify alone reads "17**." and fails to parse it)
    ("The answer is **17**.", "17", True),
    ("The answer is **18**.", "17", False),
    # an AMC choice label before the value in the box: the value is the answer
    ("The answer is $\\boxed{\\textbf{(C) } 17}$", "17", True),
    ("\\boxed{\\textbf{(D)}\\ 24}", "24", True),
    ("\\boxed{\\mathrm{(D)}\\ 24}", "24", True),
    ("\\boxed{\\textbf{(D)}\\ 25}", "24", False),
    # a list of numbers ending an answer line, joined by "and" or commas (the cue alone reads the first number)
    ("Answer: 3 and 5", "3,5", True),
    ("The answer is 1, 2 and 7.", "1,2,7", True),
    ("Answer: 3 and 6", "3,5", False),
    ("Answer: 1,000", "1000", True),                  # a thousands separator, not a list
    # thousands separators, thin spaces, money
    ("\\boxed{1,000,000}", "1000000", True),
    ("\\boxed{1\\,000\\,000}", "1000000", True),
    ("\\boxed{1{,}234}", "1234", True),
    ("The final answer is $\\$1{,}250.00$.", "1250", True),
    ("The total is 1,234,567 dollars. Final answer: 1,234,567", "1234567", True),
    # units inside and outside the box, and a number in \text
    ("The speed is $\\boxed{12\\ \\text{km/h}}$.", "12", True),
    ("The answer is \\boxed{\\text{5 dollars}}", "5", True),
    ("The answer is $50\\text{ cm}^2$.", "50", True),
    ("The area is 50 square meters.", "50", True),
    # percentages: 45% is 45 (MATH writes percentages without the sign) and 0.45 (its value)
    ("The answer is 45%.", "45", True),
    ("The answer is 45%.", "0.45", True),
    ("\\boxed{0.45}", "45\\%", True),
    ("The answer is 46%.", "45", False),
    # \text, \dfrac, \tfrac, mixed numbers
    ("The answer is \\text{June}.", "\\text{June}", True),   # no math mode anywhere: \text read as math
    ("The answer is $\\dfrac{\\sqrt{3}}{2}$.", "\\frac{\\sqrt3}{2}", True),
    ("The answer is $2\\frac{1}{2}$.", "\\frac{5}{2}", True),
    ("\\boxed{3\\tfrac{1}{4}}", "\\frac{13}{4}", True),
    ("Final answer: 2 1/2", "\\frac52", True),             # a plain-text mixed number
    ("Final answer: 2 1/3", "\\frac52", False),
    # a word answer without \text or a box: math-verify reads no words; the harness's judge would credit it.
    ("The answer is Evelyn.", "\\text{Evelyn}", False),
    # scientific notation and powers
    ("The answer is $1.5 \\times 10^{3}$.", "1500", True),
    ("The answer is $10^{-3}$.", "0.001", True),
]

# GSM8K-style numbers read by the kit's numeric grader: (response, gold, correct?)
NUMERIC_ENGLISH = [
    ("The total is $1,234.", "1234", True),
    ("Final Answer: 2,500 m", "2500", True),
    ("The answer is **42**.", "42", True),
    ("#### 1,000", "1000", True),
    ("\\boxed{\\text{42 apples}}", "42", True),
    ("The answer is 3/4 of a cup.", "0.75", True),
    ("Answer: 0.5 hours, i.e. 30 minutes", "0.5", True),
    ("She earns 12% more, so 56 dollars.", "56", True),
    ("Final Answer: 18.00", "18", True),
    ("Final Answer: 19", "18", False),
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
    assert len(MATH) >= 95


@pytest.mark.parametrize("response,gold,expected", NUMERIC_ENGLISH)
def test_numeric_english(response, gold, expected):
    assert grade_answer("numeric", response, gold).correct is expected


def test_tidying_keeps_plain_text_and_stays_linear():
    import threading

    from tts_prune.tts.extract import tidy_math_response

    # an approximation in plain text, a power written 2**10 and a thousands separator are left alone
    for text in ("about 3 g ≈ 3 g. Final answer: 3.2", "mass ≈ 3 g, so $m = 3$", "2**10 and 3**2", "Answer: 1,000"):
        assert tidy_math_response(text) == text
    # Degenerate repetitions (pruned models loop): a hang guard far above the expected time, not a benchmark.
    texts = ["$" + " \\approx 1" * 20000, "≈" * 50000, "**a** " * 20000, "Answer: " + "1, " * 20000 + "2",
             "\\text{x}" * 20000, "$\\approx" + "{" * 30000, "1 " * 30000 + "1/2"]
    done = []
    thread = threading.Thread(target=lambda: done.extend(tidy_math_response(t) for t in texts), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert len(done) == len(texts)
