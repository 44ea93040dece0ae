"""Option-letter extraction on real-looking responses; every expected letter was read off by hand."""
import threading

import pytest

from tts_prune.tts.extract import extract_letter, extract_number, last_boxed
from tts_prune.tts.grading import grade_answer

# (response, letters offered, the letter a careful reader takes as the answer; None = no answer given)
RESPONSES = [
    # the four misreadings reported in issue 9
    ("Answer: B\n\nExplanation: option (D) is wrong", "ABCD", "B"),
    ("The answer is B because (A) and (C) fail.", "ABCD", "B"),
    ("**Answer: C**", "ABCD", "C"),
    ("B. The mass is 5 kg", "ABCD", "B"),
    # long reasoning, distractor letters first, final statement last
    ("Let's check each option.\n(A) predicts a red shift, which contradicts the data.\n(B) ignores the "
     "magnetic field.\n(C) matches both the energy and the polarisation.\n(D) violates parity.\n\n"
     "Therefore, the answer is (C).", "ABCD", "C"),
    ("Option A: 2 unique signals - no.\nOption B: 3 signals - no.\nOption C: 4 signals - no.\n"
     "Option D: 5 signals, matches.\n\nFinal Answer: D", "ABCD", "D"),
    ("At first I thought the answer is (A), but the kinetic isotope effect rules it out. Re-examining, "
     "the rate-limiting step is deprotonation, so the answer is (B).", "ABCD", "B"),
    ("The product is a meso compound, so optical activity vanishes.\n\n**Final Answer**\n\n(C)", "ABCD", "C"),
    ("Since the ratio is 4:1, the correct option is B.", "ABCD", "B"),
    ("The correct answer is **(D)** because only D conserves angular momentum.", "ABCD", "D"),
    ("Comparing options, (B) is correct: it is the only one with the right symmetry.", "ABCD", "B"),
    ("Option C is the correct answer, since the others double-count the spin states.", "ABCD", "C"),
    ("I'll go with A.", "ABCD", "A"),
    ("After eliminating B and D, I choose (C).", "ABCD", "C"),
    ("The final answer is $\\boxed{B}$.", "ABCD", "B"),
    ("Thus the answer is $\\boxed{\\text{(D)}}$", "ABCD", "D"),
    ("\\boxed{C}", "ABCD", "C"),
    ("The energy is 13.6 eV times Z^2, which gives 54.4 eV.\n\\[\n\\boxed{\\textbf{(A)}}\n\\]", "ABCD", "A"),
    ("Answer: (A)", "ABCD", "A"),
    # lower case: read where no article can stand (issue 20: a lower-case statement was lost before)
    ("answer: d", "ABCD", "D"),
    ("ANSWER: B", "ABCD", "B"),
    ("The answer to this question is C.", "ABCD", "C"),
    ("So the best choice is A) 1.2 x 10^-3 M.", "ABCD", "A"),
    ("Answer:\nB", "ABCD", "B"),
    ("The answer is option B.", "ABCD", "B"),
    ("The answer would be D.", "ABCD", "D"),
    ("The answer is therefore C.", "ABCD", "C"),
    ("My answer: **B**", "ABCD", "B"),
    ("Answer - C", "ABCD", "C"),
    ("(B)", "ABCD", "B"),
    ("D", "ABCD", "D"),
    ("C) 4 stereoisomers", "ABCD", "C"),
    ("We need the number of hydrogens.\n...\nSo there are 8, which is option\n\nB", "ABCD", "B"),
    # statements that choose nothing: never a default letter
    ("I am not sure which option is right; A and C both seem plausible.", "ABCD", None),
    ("The reaction proceeds through an SN2 mechanism with inversion of configuration.", "ABCD", None),
    ("", "ABCD", None),
    ("A quick estimate gives 3 eV, consistent with a visible photon.", "ABCD", None),
    ("Option (D) is wrong and option (A) is wrong too.", "ABCD", None),
    ("B is not correct because the spin is wrong.", "ABCD", None),
    ("Let's examine answer choice A: it overestimates the mass. Answer choice B: too small.", "ABCD", None),
    ("So, among the options, C is correct.", "ABCD", "C"),
    ("Thus B is the right one: its dipole moment vanishes.", "ABCD", "B"),
    ("Vitamin C is the correct supplement for scurvy.", "ABCD", None),
    ("Answer: B\n\nNote: (A) is correct only at low temperature.", "ABCD", "B"),
    # a list of letters chooses none of them
    ("Answer: A and B are both wrong, so C", "ABCD", None),
    ("The answer is (A) or (C); I cannot tell which.", "ABCD", None),
    ("The answer is (A) or (C). Checking the sign again, the answer is C.", "ABCD", "C"),
    ("Thus, the answer is D, 7.5 mL.", "ABCD", "D"),
    # a negation never counts as the statement
    ("The answer is not A. The answer is D.", "ABCD", "D"),
    # the last statement wins over an earlier one, whatever their kinds
    ("\\boxed{A}\n\nWait, I mis-signed the charge. The correct answer is C.", "ABCD", "C"),
    ("The answer is C.\n\nDouble-checking the units confirms it: \\boxed{C}", "ABCD", "C"),
    # more than four options (MMLU-Pro style); letters outside the offered set are never read
    ("Comparing all ten, the answer is (H).", "ABCDEFGHIJ", "H"),
    ("The answer is (H).", "ABCD", None),
    ("Answer: E", "ABCDE", "E"),
    # the article "A" at the start of a sentence is not an answer
    ("A photon of 500 nm carries 2.48 eV.\n\nThe answer is B.", "ABCD", "B"),
    ("The answer is A because the entropy must increase.", "ABCD", "A"),
    # --- issue 20: plain English statements of the chosen letter (new real-looking cases). Where a peer reads
    # differently: lighteval's anchored indices take upper-case letters only and need "answer" within 50
    # characters; the s1 harness reads a bare letter after "Answer:" or in a box and asks a judge for anything
    # else. Each case says why it is read (or not) here.
    ("The answer is (C).", "ABCD", "C"),
    ("I'd go with option B", "ABCD", "B"),
    ("Correct choice: D", "ABCD", "D"),
    ("B is correct.", "ABCD", "B"),                   # the letter opens the line: not an article
    ("answer: (c)", "ABCD", "C"),                     # parenthesised: never an article (lighteval: upper case only)
    ("The correct answer is (b).", "ABCD", "B"),
    ("We get 4 signals. Answer: (b)", "ABCD", "B"),
    ("answer: **d**", "ABCD", "D"),                   # closed by bold markup
    ("the best answer is b)", "ABCD", "B"),
    ("The correct option is (d) 12 m/s", "ABCD", "D"),
    ("so option b is correct", "ABCD", "B"),          # after "option" a letter is never an article
    ("Therefore the answer is a.", "ABCD", "A"),      # the statement ends on the letter
    ("The answer is a bit more subtle than that.", "ABCD", None),   # the article, followed by a word
    ("The answer is a ratio of 2:1.", "ABCD", None),
    ("the answer is a number between 1 and 4", "ABCD", None),
    ("Answer: a and b are both wrong", "ABCD", None),  # a list, lower case too
    ("a is correct", "ABCD", None),                   # a bare lower-case "a" opening a line stays an article
    ("My final choice is B.", "ABCD", "B"),
    ("Final choice: (A)", "ABCD", "A"),
    ("My pick: B", "ABCD", "B"),
    ("The correct response is C.", "ABCD", "C"),
    ("The most plausible option is D.", "ABCD", "D"),
    ("The best option here is C.", "ABCD", "C"),
    ("I'll pick C.", "ABCD", "C"),
    ("I would choose (A).", "ABCD", "A"),
    ("I am going with D.", "ABCD", "D"),
    ("So I select B.", "ABCD", "B"),
    ("Option D is the answer.", "ABCD", "D"),
    ("(C) is the right answer.", "ABCD", "C"),
    ("Hence, option (B) is the correct one.", "ABCD", "B"),
    ("Letter C is correct.", "ABCD", "C"),
    ("C seems to be the best answer.", "ABCD", "C"),
    ("Answer (B)", "ABCD", "B"),                      # no connector, but "Answer" opens the line
    ("The answer (B) is a common misconception, so let us check.", "ABCD", None),  # mid-sentence: not a statement
    ("So the answer would have to be B.", "ABCD", "B"),
    ("The right answer should be D", "ABCD", "D"),
    ("The answer is not B; it is C.", "ABCD", "C"),   # the correction after a negation
    ("The correct answer is C. It cannot be B.", "ABCD", "C"),
    ("Between A and D, D is correct.", "ABCD", "D"),
    ("Final answer: \\textbf{C}", "ABCD", "C"),
    ("The answer is $\\mathbf{B}$", "ABCD", "B"),
    ("Answer: [C]", "ABCD", "C"),
    ("answer is: C", "ABCD", "C"),
    ("The answer is choice (C) 4.5 J", "ABCD", "C"),
    ("Final Answer: The final answer is (B). I hope it is correct.", "ABCD", "B"),
    ("Answer: A) 3.2 eV", "ABCD", "A"),
    ("\\boxed{b}", "ABCD", "B"),                      # a box holds the choice, whatever its case
    ("Answer: \\( \\boxed{B} \\)", "ABCD", "B"),
    # never a default letter: guesses, hedges and option reviews choose nothing
    ("It could be A or it could be D; I cannot decide.", "ABCD", None),
    ("Option B: 3 signals. Option C: 4 signals.", "ABCD", None),
    ("I think the answer might be one of the later options.", "ABCD", None),
]


@pytest.mark.parametrize("response,letters,expected", RESPONSES)
def test_extract_letter(response, letters, expected):
    assert extract_letter(response, letters) == expected


def test_battery_size():
    assert len(RESPONSES) >= 100


@pytest.mark.parametrize("response,letters,expected", RESPONSES)
def test_grade_answer_choice(response, letters, expected):
    # Graded against every offered letter: exactly the extracted one is correct, and no_answer is set
    # exactly when nothing was extracted.
    for gold in letters:
        grade = grade_answer("choice", response, f"({gold})", options=len(letters))
        assert grade.correct is (gold == expected)
        assert grade.prediction == expected
        assert grade.no_answer is (expected is None)
        assert grade.timeout is False


def test_default_letters_reach_the_gold():
    # Without ``options`` the offered letters are A..D, extended up to the gold letter.
    assert grade_answer("choice", "The answer is (H).", "H").correct
    assert grade_answer("choice", "The answer is (H).", "B").prediction is None


def test_bad_letters_are_refused():
    with pytest.raises(ValueError, match="'abc'"):
        extract_letter("Answer: A", "abc")
    with pytest.raises(ValueError, match="options=1"):
        grade_answer("choice", "Answer: A", "A", options=1)


DEGENERATE = [
    "answer is" + " " * 20000 + "x",            # took 89 s before whitespace runs were squeezed
    "the answer" + " \n" * 20000,
    "\\boxed{" * 20000,                         # unclosed boxes: quadratic with a scan per box
    ("answer is ** " + " " * 50 + "$ ") * 2000,
    "the answer is " + "b " * 20000,               # lower-case letters: each needs its look-ahead
    "Answer (" * 20000,
]


@pytest.mark.parametrize("response", DEGENERATE)
def test_degenerate_output_is_read_without_hanging(response):
    # Pruned models repeat themselves; extraction runs in-process, so it must stay linear-ish. The
    # join bound is a hang guard three orders of magnitude above the expected time, not a benchmark.
    out = []
    thread = threading.Thread(target=lambda: out.append((extract_letter(response), extract_number(response),
                                                         last_boxed(response))), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "extraction hung on a degenerate response"
    assert out == [(None, None, None)]


def test_nested_and_escaped_braces():
    assert last_boxed("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert last_boxed("{ unmatched \\boxed{5} and } extra }") == "5"
    assert last_boxed("\\boxed{\\frac{1}{2}} then \\fbox{7}") == "7"
    assert extract_letter("\\boxed{\\boxed{B}}") == "B"
