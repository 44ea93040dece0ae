"""Answer extraction from model text: option letters (anchored), GSM8K-style numbers, boxed and cued spans.

Math answers are extracted by math-verify itself (see ``grading``), after ``tidy_math_response`` rewrites
the ways people state an answer that its extractors misread (an exact value followed by its approximation,
bold values, AMC choice labels, number lists, thin-space thousands, plain mixed numbers); this module holds
the plain-text extractors, which need no sympy and cannot hang (each is a handful of linear regex scans).

Multiple choice (``extract_letter``) follows lighteval's anchored indices extraction
(``lighteval.metrics.utils.extractive_match_utils``, ``IndicesExtractionConfig`` with
``try_extract_without_anchor=False``): patterns are tried by priority, and within a priority the match
that ends LAST in the text wins, so the final answer statement beats letters quoted in the reasoning.

1. Answer statements: ``\\boxed{B}`` (also ``\\boxed{\\text{(B)}}``); an answer anchor ("answer",
   "final answer", "correct/best/right/final/my answer|option|choice|response|pick", "the most plausible
   option") followed by a connector (":", "is", "would be", "has to be", "=", "-", ...) and the letter, with
   markup allowed around it (``**Answer: C**``, "answer is option (B)", ``Answer: $\\boxed{C}$``; "Final
   Answer" may be followed by the letter on the next line without a connector, and "Answer (B)" opening a
   line needs none); "I choose/pick/select B", "I'll pick C", "I would choose (A)", "go with B"; the
   reversed form "(B) is correct" / "option B is the best answer" / "Option D is the answer" (not "...
   correct only if"), where the letter must be marked: parenthesised, bold, after "option"/"choice"/"letter",
   or opening a line, clause ("..., C is correct") or "so/thus/therefore/hence" (never "Vitamin C is the
   correct ..."); and the correction in "the answer is not B; it is C". A letter listed with another
   ("Answer: A and B are wrong", "(A) or (C)") is not a statement.
2. The letter opening the response ("B. The mass is 5 kg", "(B)", "**B**") or standing alone on the last
   line of the response.

Nothing else is read: a response with no anchored letter gives None, never a default letter. s1's GPQA
scorer (its lm-evaluation-harness fork, ``tasks/gpqa/openai/utils.py``) takes the last ``\\boxed{}``, else
the text after the last "Answer:", asks gpt-4o-mini when that is not a bare letter, and otherwise scores
the response as "A", which credits a non-answer on every question whose gold letter is A.
Differences from lighteval: the anchor needs a connector or markup before the letter (lighteval accepts any
50 characters after the word "answer", which reads "answer choice A: ..." in an option-by-option review as
a statement); boxed letters and the reversed "(B) is correct" form are read; letters at the start of later
lines are not (they are the option list being discussed). A lower-case letter is read only where the
article "a" cannot stand: inside parentheses or a box, after "option", or closing the statement ("Answer:
b", "the answer is a.", "the best answer is b)"); "the answer is a bit subtle" and "a is correct" choose
nothing (lighteval reads upper case only).
"""
from __future__ import annotations

import bisect
import re
from fractions import Fraction

CUES = ("final answer:", "final answer is", "the answer is", "answer:")

# --------------------------------------------------------------------------- boxed and cued spans


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced, in order.

    One pass over the braces (a stack of open positions), so a degenerate response with thousands of
    unclosed boxes costs linear time, not quadratic.
    """
    opens = {m.end() - 1: m.start() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)}
    spans, stack = [], []
    for brace in re.finditer(r"[{}]", text):
        if brace.group() == "{":
            stack.append(brace.start())
        elif stack:
            i = stack.pop()
            if i in opens:
                spans.append((opens[i], brace.end(), text[i + 1:brace.start()].strip()))
    return sorted(spans)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None when absent."""
    spans = boxed_spans(text)
    return spans[-1][2] if spans else None


def after_cue(text: str) -> str | None:
    """Text after the answer cue that ends last in ``text`` (one of ``CUES``), to the end of its line.

    An answer written on the line after the cue ("Final Answer:\\n42") is read too. None when no cue
    occurs or nothing follows it.
    """
    lower = text.lower()
    ends = [lower.rfind(cue) + len(cue) for cue in CUES if cue in lower]
    if not ends:
        return None
    line = text[max(ends):].strip().split("\n")[0].strip()
    return line.strip(" .$*") or None


def extract_answer(response: str) -> str | None:
    """The candidate answer span: the last ``\\boxed{}``, else the text after the last cue, else None."""
    boxed = last_boxed(response)
    return boxed if boxed is not None else after_cue(response)


# --------------------------------------------------------------------------- how people write math answers

_APPROX = re.compile(r"\s*(?:\\approx|≈)")
_APPROX_REACH = 300  # characters an approximation may run before its span closes; longer: left alone
_APPROX_LAST = 64    # only the last approximations are read (a degenerate text may hold thousands)
_BOLD = re.compile(r"(?<![\w)*])\*\*(?=\S)([^*\n]{1,200}?)(?<=\S)\*\*(?![\w(*])")
_CHOICE_LABEL = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf)\s*\{\s*\(\s*[A-E]\s*\)\s*\}\s*(?:\\[ ,;!]\s*)*"
                           r"(?=[^\s}$])")
_THIN_THOUSANDS = re.compile(r"(?<=\d)(?:\\[,!;]|\\ )\s*(?=\d{3}(?!\d))")    # 1\,000\,000 -> 1000000
_MIXED = re.compile(r"(?<![\d./])(\d+)[ \t]+(\d+)/(\d+)(?![\d./])")            # plain "2 1/2"
_TEXT_NUMBER = re.compile(r"\\text\{\s*(-?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z][A-Za-z ./]*\}")  # \text{5 dollars}
_NUM = r"-?\d+(?:\.\d+)?"
# A plain-text list of numbers ending an answer line ("Answer: 3, 5", "the answer is 1, 2 and 7."): math-verify's
# plain-text cue reads one number, so the list is put in math mode.
# A comma needs a space after it ("1,000" is one number).
_NUMBER_LIST = re.compile(rf"(?im)(answer\s*(?:is|:)[ \t]*)({_NUM}(?:,[ \t]+{_NUM})*(?:,?[ \t]+and[ \t]+{_NUM})?)"
                          rf"([ \t]*\.?[ \t]*)$")


def _math_list(match: re.Match) -> str:
    items = match.group(2)
    if "," not in items and " and " not in items:
        return match.group(0)
    listed = re.sub(r",?[ \t]+and[ \t]+", ", ", items)
    return f"{match.group(1)}${listed}${match.group(3)}"


_SPAN_TOKENS = re.compile(r"[{}$\n]|\\[\])]")


def _drop_approximations(text: str) -> str:
    # "X \approx Y" states X and then a decimal approximation: keep X. The approximation runs to the end of the
    # math span or group that holds it (an unmatched "}", a "$", "\]" or "\)" on the same line); an
    # approximation in plain text is left alone. Only brace and delimiter tokens are visited (C-speed search).
    out, last = [], 0
    dollars = [m.start() for m in re.finditer(r"(?<!\\)\$", text)]  # unescaped "$", in order
    for match in list(_APPROX.finditer(text))[-_APPROX_LAST:]:  # the final answer sits near the end
        if match.start() < last:
            continue
        depth, end = 0, None
        for token in _SPAN_TOKENS.finditer(text, match.end(), min(len(text), match.end() + _APPROX_REACH)):
            ch = token.group()
            if ch == "{":
                depth += 1
            elif ch == "}" and depth:
                depth -= 1
            elif ch == "\n":
                break  # plain text: "about 3 g ≈ 3 g. Final answer: 3.2" keeps its line
            elif ch == "}" or depth == 0:
                # a "$" closes the span only when the "\approx" sits inside one (an odd count of "$" before it)
                if ch != "$" or bisect.bisect_left(dollars, match.start()) % 2:
                    end = token.start()
                break
        if end is not None:
            out.append(text[last:match.start()])
            last = end
    return "".join(out) + text[last:]


def tidy_math_response(text: str) -> str:
    """Rewrite the ways people state a final math answer that math-verify's extractors misread, before parsing.

    - ``X \\approx Y`` / ``X ≈ Y``: the exact X is the answer, Y its decimal approximation (math-verify reads
      the whole relation, which compares to nothing; lighteval's any_match may take Y). "approximately 0.785"
      alone stays an approximation, graded as such (wrong where an exact value is asked).
    - ``**17**`` (markdown bold, not ``2**10``): the 17.
    - ``\\textbf{(C) } 17`` (an AMC choice label before the value): the 17.
    - ``1\\,000\\,000`` (thin-space thousands): 1000000; ``\\text{5 dollars}``: 5.
    - "2 1/2" in plain text (a mixed number, proper fraction): ``2\\frac{1}{2}``, which math-verify reads as 5/2.
    - "Answer: 3 and 5" / "Answer: 3, 5" (a plain list of numbers ending an answer line): the list, in math mode.
    - ``\\text{June}`` in a response with no math delimiters at all: read as math (``$\\text{June}$``).
    Each rule is a linear scan; nothing here can hang.
    """
    text = _drop_approximations(text)
    text = _BOLD.sub(r"\1", text)
    text = _CHOICE_LABEL.sub("", text)
    text = _THIN_THOUSANDS.sub("", text)
    text = _TEXT_NUMBER.sub(r"\1", text)
    text = _MIXED.sub(lambda m: f"${m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}$"
                      if int(m.group(2)) < int(m.group(3)) else m.group(0), text)
    text = _NUMBER_LIST.sub(_math_list, text)
    if not re.search(r"\$|\\\[|\\\(", text):
        text = re.sub(r"\\text\{([^{}$\n]{1,100})\}", r"$\\text{\1}$", text)
    return text


# --------------------------------------------------------------------------- numbers (GSM8K)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def parse_number(text: str) -> Fraction | None:
    """``"1,000"`` -> 1000, ``"18.0"`` -> 18, ``"3/4"`` -> 3/4, ``"#### 42"`` -> 42; None when not a number."""
    text = str(text).split("####")[-1]
    text = re.sub(r"\\[!,;]|[$,\s]|\\%|%", "", text).rstrip(".")
    if not re.fullmatch(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?", text):
        return None
    if "/" in text:
        num, den = text.split("/")
        return Fraction(Fraction(num), int(den)) if int(den) else None
    return Fraction(text)


def _strip_text(s: str) -> str:
    return re.sub(r"\\(?:text|mathrm|textbf|mbox)\{([^}]*)\}", r"\1", s)


def extract_number(response: str) -> str | None:
    """The final number of a GSM8K-style response, as written (commas kept); None when there is none.

    Order: the last ``\\boxed{}``, then the last ``#### N`` line, then the text after the last answer cue
    (for a span, the first number after its last "=", so "9 * 2 = 18" gives 18), then the last number in
    the whole response (the GSM8K convention of lm-evaluation-harness's flexible extract).
    """
    marker = re.findall(r"####\s*([^\n]*)", response)
    for span in (last_boxed(response), marker[-1] if marker else None, after_cue(response)):
        if span:
            tail = _strip_text(span).split("=")[-1]
            found = _NUMBER.findall(tail)
            if found:
                return found[0]
    found = _NUMBER.findall(_strip_text(response))
    return found[-1].rstrip(".") if found else None


# --------------------------------------------------------------------------- option letters

# Anchors that introduce the chosen option: "answer", "correct/best/right/final answer|option|choice|response",
# "my answer|pick|choice", "the most plausible/likely option".
_ANCHOR = (r"(?i:(?:correct|best|right|final|my|most\s+(?:plausible|likely|reasonable))\s+"
           r"(?:answer|option|choice|response|pick|selection)|my\s+pick|answer)")
_CONNECT = (r"(?:\s*(?:\*\*|__)?\s*(?::|=|-|–|—|(?i:is|would\s+be|should\s+be|must\s+be|will\s+be|has\s+to\s+be"
            r"|would\s+have\s+to\s+be|therefore|thus|then|clearly|indeed|definitely)\b))")
_QUALIFIER = r"(?:\s+(?i:here|(?:to|for|of)\s[^.\n:]{0,60}?))?"   # "the answer to this question is B"
_FILL = r"(?:\s|\*|_|\$|\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{|(?i:option|choice|letter)\b|[(\[{])*"
_END = r"(?![A-Za-z0-9])"
# A lower-case letter is an option only where an article cannot stand: closed by ")", "]", "**", or ending
# the statement ("Answer: b", "the answer is a."); "the answer is a bit subtle" chooses nothing.
_LOWER_END = r"(?=\s*[)\]]|\*\*|[.!;:,]?[ \t]*(?:$|\n)|[.!;,][ \t])"


def _letter(letters: str, lower: str = "guarded") -> str:
    # The letter (one capturing group); lower case "guarded" (_LOWER_END), "free" (after "option", inside
    # parentheses: never an article) or "no". A letter followed by "and/or/, <letter>" lists options ("Answer:
    # A and B are wrong"), it chooses none.
    small = letters.lower()
    either = {"guarded": rf"[{letters}]|[{small}]{_LOWER_END}", "free": rf"[{letters}{small}]", "no": rf"[{letters}]"}[lower]
    return rf"({either})(?![).]?\s*(?:,|&|(?i:and|or)\b)\s*\(?[{letters}{small}]{_END})"


def _statement_patterns(letters: str) -> list[re.Pattern]:
    # Each pattern's only capturing groups are letters; the match's letter is the first group that matched.
    letter, free, upper = _letter(letters), _letter(letters, "free"), _letter(letters, "no")
    marked = (rf"(?:(?i:option|choice|letter)\s*\(?{free}\)?|\({free}\)|\*\*\(?{letter}\)?\*\*"
              rf"|(?:^|(?<=\n)|(?<=[,:;.])\s*|(?i:\b(?:so|thus|therefore|hence)),?\s+){upper})")
    return [
        re.compile(rf"(?<![A-Za-z])(?:{_ANCHOR}){_QUALIFIER}{_CONNECT}{{1,3}}{_FILL}{letter}{_END}"),
        re.compile(rf"(?i:final\s+answer)(?:\*\*|__)?{_FILL}{letter}{_END}"),
        # "Answer (B)" opening a line, without a connector
        re.compile(rf"(?:^|(?<=\n))[ \t]*(?:\*\*)?(?i:answer)(?:\*\*)?[ \t]*\({letter}\)"),
        re.compile(rf"(?i:\bI(?:'ll|'d|\s+will|\s+would|\s+shall)?\s+(?:choose|pick|select|go\s+with|opt\s+for)"
                   rf"|\bgo(?:ing)?\s+with|\bopt(?:ing)?\s+for){_FILL}{letter}{_END}"),
        re.compile(rf"(?<![A-Za-z0-9]){marked}\s+(?i:is|seems\s+to\s+be|appears\s+to\s+be)\s+(?i:the\s+)?"
                   rf"(?i:(?:correct|right|best)\b|(?:final\s+|correct\s+)?answer\b)"
                   rf"(?!\s+(?i:only|if|when|unless|provided)\b)"),
        # "the answer is not B; it is C": the correction after the negation
        re.compile(rf"(?i:answer\s+is\s+not)\s+\(?[{letters}]\)?\s*[;,]\s*(?i:it\s+is|it's|but|rather)\s+"
                   rf"{_FILL}{letter}{_END}"),
    ]


def _boxed_letters(text: str, letters: str) -> list[tuple[int, str]]:
    found = []
    for _, end, content in boxed_spans(text):
        inner = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^}]*)\}", r"\1", content)
        match = re.fullmatch(rf"[\s(*$]*(?i:option|choice)?\s*\(?([{letters}{letters.lower()}])\)?(?:[.):]\s*.*)?"
                             rf"[\s*$]*", inner, flags=re.DOTALL)
        if match:
            found.append((end, match.group(1).upper()))
    return found


def _check_letters(letters: str) -> str:
    if not letters or not re.fullmatch(r"[A-Z]+", letters) or len(set(letters)) != len(letters):
        raise ValueError(f"letters={letters!r} must be distinct upper-case option letters, e.g. 'ABCD'")
    return letters


def _squeeze(text: str) -> str:
    # One character per whitespace run (a newline if the run has one): the anchored patterns allow
    # whitespace in several adjacent places, which on a degenerate run of thousands of spaces costs
    # cubic time; squeezed, each run has one way to match.
    return re.sub(r"\s+", lambda m: "\n" if "\n" in m.group() else " ", text)


def extract_letter(response: str, letters: str = "ABCD") -> str | None:
    """The chosen option letter (one of ``letters``) by the anchored priorities above; None when no anchor."""
    letters = _check_letters(letters)
    response = _squeeze(response)
    statements = _boxed_letters(response, letters)
    for pattern in _statement_patterns(letters):
        for match in pattern.finditer(response):
            statements.append((match.end(), next(g for g in match.groups() if g).upper()))
    if statements:
        return max(statements, key=lambda s: s[0])[1]
    lone = rf"(?:\*\*)?\(?(?P<letter>[{letters}])\)?(?:\*\*)?"
    opening = re.match(rf"\s*{lone}(?:[.):]|\s*$)", response)
    last_line = re.search(rf"(?:^|\n)\s*{lone}\.?\s*$", response)
    for match in (last_line, opening):
        if match:
            return match.group("letter")
    return None
