"""What a sentence asserts about the picture's objects: which objects, negated or not, how many,
which colour.

A shallow reading on purpose: sentences and their comma-separated segments are tokenised with the
object vocabulary; a claim is one vocabulary mention plus what sits right next to it (a negator
before it, a number before it, a colour before it or after a copula). Anything subtler is left to
the LLM judge. The same reader parses assistant turns and the annotations (captions, regions, QA
answers), so evidence and claims are read alike.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Literal

from unimm.filter.normalize import NUMBER_WORDS
from unimm.grounding.vocab import Mention, Vocabulary

NEGATORS = frozenset({"no", "not", "without", "nor", "never", "neither", "none", "nothing", "nobody"})
# Words that put a nearby object in a comparison, an example or a condition: it is talked about,
# not said to be in the picture ("unlike horses, elephants...", "bigger than a car").
NOT_ASSERTING = frozenset({"unlike", "like", "than", "versus", "vs", "such", "if", "whether", "instead"})
# Words that end a negation's reach inside a sentence ("no cars, but a bus").
SCOPE_BREAKS = frozenset({"but", "however", "though", "although", "while", "yet", "except", "instead"})
# What may sit between two list items that share one negation ("no cats, dogs or birds").
LIST_GLUE = frozenset({"and", "or", "nor", "any", "a", "an", "the", "even", "other"})
# Between a number and its noun only adjectives may stand ("three small dogs", not "two of the dogs").
NOT_ADJECTIVES = frozenset(
    {
        "of",
        "the",
        "these",
        "those",
        "them",
        "in",
        "on",
        "at",
        "with",
        "and",
        "or",
        "to",
        "from",
        "by",
        "is",
        "are",
    }
)
LOWER_BOUND = frozenset({"least", "over", "more", "than", "plus"})
APPROXIMATE = frozenset({"about", "around", "approximately", "roughly", "nearly", "almost", "maybe", "some"})
COPULAS = frozenset({"is", "are", "was", "were", "looks", "look", "appears", "appear", "seems", "seem"})
COPULA_FILLERS = frozenset(
    {"mostly", "mainly", "all", "bright", "dark", "light", "pale", "painted", "colored"}
)

# Colour families: annotators and models name one colour several ways; a claim agrees with the
# evidence when they fall in the same family.
COLOUR_FAMILIES: dict[str, str] = {
    "red": "red",
    "maroon": "red",
    "orange": "orange",
    "yellow": "yellow",
    "gold": "yellow",
    "golden": "yellow",
    "green": "green",
    "blue": "blue",
    "navy": "blue",
    "purple": "purple",
    "violet": "purple",
    "pink": "pink",
    "brown": "brown",
    "tan": "brown",
    "beige": "brown",
    "black": "black",
    "white": "white",
    "gray": "gray",
    "grey": "gray",
    "silver": "gray",
}
EXTRA_NUMBERS = {"single": "1", "both": "2", "pair": "2", "couple": "2", "dozen": "12"}

_SENTENCE = re.compile(r"[.;!?\n]+(?:\s+|$)")
_SEGMENT = re.compile(r"\s*,\s*")
_NT = re.compile(r"n['\u2019]t\b")
_POSSESSIVE = re.compile(r"['\u2019]s\b")


@dataclass(frozen=True)
class Claim:
    """One object mention and what the sentence says about it."""

    canonical: str
    surface: str
    negated: bool = False  # not asserted as present: negated, compared, conditional
    denies: bool = False  # "there is no X": a claim that X is absent
    count: int | None = None
    count_op: Literal["eq", "ge"] = "eq"
    colours: list[str] = field(default_factory=list)  # colour families


def number_value(token: str) -> int | None:
    """'three' / '3' / 'both' -> int; None for anything else (decimals are no counts)."""
    t = NUMBER_WORDS.get(token, EXTRA_NUMBERS.get(token, token))
    return int(t) if t.isdigit() and len(t) < 5 else None


def colour_family(token: str) -> str | None:
    """'grey' -> 'gray'; None when the token names no colour."""
    return COLOUR_FAMILIES.get(token)


def _prepare(text: str) -> str:
    # "isn't" -> "is not" so negation is one token whatever the tokeniser does with apostrophes;
    # "dog's" -> "dog" so possessives match the vocabulary.
    return _POSSESSIVE.sub("", _NT.sub(" not", text.lower()))


def sentences(text: str) -> list[str]:
    """Sentences of a turn (split on . ; ! ? and newlines)."""
    return [s for s in _SENTENCE.split(_prepare(text)) if s.strip()]


def _count_before(tokens: list[str], start: int) -> tuple[int | None, Literal["eq", "ge"], bool]:
    """(count, op, approximate) from the words right before a mention."""
    i = start - 1
    while i >= 0 and start - i <= 3:
        tok = tokens[i]
        n = number_value(tok)
        if n is not None:
            before = set(tokens[max(0, i - 2) : i])
            if before & APPROXIMATE:
                return None, "eq", True
            return n, ("ge" if before & LOWER_BOUND else "eq"), False
        if tok in NOT_ADJECTIVES or not tok.isalpha():
            break
        i -= 1
    return None, "eq", False


def _colours_around(tokens: list[str], m: Mention, floor: int) -> list[str]:
    out: list[str] = []
    # before (never reaching back past the previous object): "a red bus", "a bright red bus"
    for tok in tokens[max(floor, m.start - 3) : m.start]:
        fam = colour_family(tok)
        if fam and fam not in out:
            out.append(fam)
    # after a copula: "the bus is red", "the cars are mostly white and blue"
    j = m.end
    if j < len(tokens) and tokens[j] in COPULAS:
        j += 1
        while j < len(tokens) and (
            tokens[j] in COPULA_FILLERS or tokens[j] == "and" or colour_family(tokens[j])
        ):
            fam = colour_family(tokens[j])
            if fam and fam not in out:
                out.append(fam)
            j += 1
    return out


def _negation(tokens: list[str], start: int) -> tuple[bool, bool]:
    """(not asserted, denies existence). Only "no X", "without X", "not a/any X" deny that X is
    there; "the dog is not on the couch" negates the couch without saying there is none, and
    "unlike horses" only compares."""
    window = tokens[max(0, start - 6) : start]
    for back, tok in enumerate(reversed(window), start=1):
        if tok in SCOPE_BREAKS:
            return False, False
        if tok in NOT_ASSERTING and back <= 3:
            return True, False  # "unlike horses", "bigger than a car", "such as lions"
        if tok in NEGATORS:
            near = back <= 3
            if tok == "not":
                near = near and any(
                    t in ("any", "a", "an", "single") for t in tokens[start - back + 1 : start]
                )
            return True, near
    return False, False


def sentence_claims(sentence: str, vocab: Vocabulary) -> list[Claim]:
    """Claims of one sentence, in order."""
    out: list[Claim] = []
    prev_negated = prev_denies = False
    for seg in _SEGMENT.split(sentence):
        tokens = vocab.tokenize(seg)
        last_end = 0
        for m in vocab.mentions(seg):
            if colour_family(m.surface) and m.start > 0 and tokens[m.start - 1] in COPULAS | COPULA_FILLERS:
                continue  # "the case looks orange": a colour, not the fruit
            between = tokens[last_end : m.start]
            # "there are no cats, dogs or birds": a list keeps the negation of its head.
            neg, denies = _negation(tokens, m.start)
            if not neg and prev_negated and all(t in LIST_GLUE for t in between):
                neg, denies = True, prev_denies
            count, op, approx = _count_before(tokens, m.start)
            if neg or approx:
                count = None
            colours = _colours_around(tokens, m, last_end)
            out.append(Claim(m.canonical, m.surface, neg, denies, count, op, colours))
            prev_negated, prev_denies, last_end = neg, denies, m.end
        if any(t in SCOPE_BREAKS for t in tokens[last_end:]) or (prev_negated and not prev_denies):
            # a comparison's reach ends at the comma: "unlike horses, elephants ..."
            prev_negated = False
    return out


# The same texts come back again and again: an annotation is read as evidence and restated by the
# dialogue, and region phrases, answers and questions repeat across images. Claims are frozen, so
# the claims of a text are computed once per vocabulary (and process) and shared.
_MEMO_LIMIT = 500_000
_memo: weakref.WeakKeyDictionary[Vocabulary, dict[str, tuple[Claim, ...]]] = weakref.WeakKeyDictionary()


def text_claims(text: str, vocab: Vocabulary) -> list[Claim]:
    """Claims of every sentence of `text`."""
    memo = _memo.setdefault(vocab, {})
    claims = memo.get(text)
    if claims is None:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()  # bounded memory: start over rather than grow with the corpus
        claims = memo[text] = tuple(c for s in sentences(text) for c in sentence_claims(s, vocab))
    return list(claims)


def text_numbers(text: str) -> list[int]:
    """Counts named anywhere in a text ("Five.", "There are 3 of them.")."""
    toks = re.findall(r"[a-z0-9]+", _prepare(text))
    return [n for n in (number_value(t) for t in toks if t not in EXTRA_NUMBERS) if n is not None]


def text_colours(text: str) -> list[str]:
    """Colour families named anywhere in a text, in order, once each."""
    out: list[str] = []
    for tok in re.findall(r"[a-z]+", text.lower()):
        fam = colour_family(tok)
        if fam and fam not in out:
            out.append(fam)
    return out
