"""Text normalisation shared by the filters, dedup and decontamination.

`normalize_text` is the plain form (lower-case, punctuation to spaces, collapsed whitespace);
`normalize_answer` follows the VQA evaluation script's answer processing (articles dropped,
number words to digits, a subset of its contractions list) so generated answers compare with
annotated VQA answers the way the benchmarks compare them.
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']|_")
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9']+")

# The number words of the VQA eval script (manualMap) plus a few more an LLM writes.
NUMBER_WORDS: dict[str, str] = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "twenty": "20",
}
ARTICLES = frozenset({"a", "an", "the"})

# Subset of the VQA eval script's contractions map (apostrophe-less -> canonical form).
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hes": "he's",
    "im": "i'm",
    "isnt": "isn't",
    "itd": "it'd",
    "itll": "it'll",
    "ive": "i've",
    "lets": "let's",
    "shes": "she's",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "theyve": "they've",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
    "youve": "you've",
}

YES_WORDS = frozenset({"yes", "yeah", "yep", "correct", "true"})
NO_WORDS = frozenset({"no", "nope", "not", "false"})


def normalize_text(text: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed (apostrophes dropped)."""
    return _WS.sub(" ", _PUNCT.sub(" ", text.lower()).replace("'", "")).strip()


def words(text: str) -> list[str]:
    """Words of `normalize_text(text)`."""
    t = normalize_text(text)
    return t.split(" ") if t else []


def answer_tokens(text: str) -> list[str]:
    """VQA-style answer tokens: lower-case, punctuation stripped (a comma inside a number is
    dropped, e.g. 1,000 -> 1000), contractions canonical, number words as digits, no articles."""
    t = re.sub(r"(?<=\d),(?=\d)", "", text.lower())
    t = re.sub(r"(?<!\d)\.(?!\d)", " ", t)  # the eval script keeps decimal points only
    t = _PUNCT.sub(" ", t.replace("\u2019", "'"))
    out = []
    for w in _WORD.findall(t):
        w = CONTRACTIONS.get(w.replace("'", ""), w)
        w = NUMBER_WORDS.get(w, w)
        if w not in ARTICLES:
            out.append(w)
    return out


def normalize_answer(text: str) -> str:
    """`answer_tokens` joined by single spaces."""
    return " ".join(answer_tokens(text))


def numbers_in(tokens: list[str]) -> set[str]:
    """Numbers (as canonical digit strings) among normalised answer tokens."""
    out = set()
    for t in tokens:
        if re.fullmatch(r"\d+(\.\d+)?", t):
            out.add(str(int(float(t))) if float(t).is_integer() else t)
    return out


def polarity(tokens: list[str]) -> str | None:
    """'yes' / 'no' when the answer opens with an affirmation or a negation, else None."""
    if not tokens:
        return None
    if tokens[0] in YES_WORDS:
        return "yes"
    if tokens[0] in NO_WORDS:
        return "no"
    return None
