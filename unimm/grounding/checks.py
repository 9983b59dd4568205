"""Rule checks of one assistant turn against an image's `Evidence`.

Each check yields a `Check` (kind, passed, reason when failed):
- object (CHAIR-style): every object the turn asserts must be supported; an object the evidence
  shows absent is `hallucinated_object:<name>`;
- count: "three buses", "at least 5 people", or a number answering "How many buses ...?" against
  COCO non-crowd instance counts (a crowd box makes the count a lower bound), VG object counts
  (distinct boxes..all boxes) and counts named by captions and QA answers:
  `count_mismatch:bus:3!=2`;
- existence: "Is there a dog?" answered yes/no, or "there is no dog", against the same evidence:
  `existence_mismatch:dog:yes!=no`;
- attribute: a colour given to an object ("the red bus", "the bus is red", "What colour is the
  bus?") against VG attributes, regions, captions and colour QA: `attribute_mismatch:bus:red`.
A fact the evidence cannot decide gives no check: it neither passes nor fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unimm.filter.normalize import answer_tokens, normalize_text, polarity
from unimm.grounding.claims import Claim, text_claims, text_colours, text_numbers
from unimm.grounding.evidence import Evidence
from unimm.grounding.reasons import (
    ATTRIBUTE_MISMATCH,
    COUNT_MISMATCH,
    EXISTENCE_MISMATCH,
    HALLUCINATED_OBJECT,
    reason,
)
from unimm.grounding.vocab import Vocabulary
from unimm.schema import CheckKind

_EXISTENCE = re.compile(
    r"^(?:(?:is|are|was|were) there"
    r"|(?:do|can|could|did) (?:you|i|we|one) (?:see|notice|spot|find|observe|make out|detect)"
    r"|is it possible to see)\b"
)
_COMPARATIVE = re.compile(r"\b(?:more|fewer|less|than|as many|enough|same number)\b")
_YESNO_OPENER = re.compile(r"^(?:is|are|was|were|does|do)\b")
_EXISTENCE_VERBS = ("show", "contain", "have", "include", "feature", "depict", "visible", "present")


@dataclass(frozen=True)
class Check:
    """One check of one fact in one turn."""

    kind: CheckKind
    passed: bool
    reason: str | None = None  # set when failed
    obj: str | None = None  # the object it is about


def _is_existence_question(q: str) -> bool:
    if _COMPARATIVE.search(q):
        return False  # "Are there more cats than dogs?" compares, it does not ask whether
    if _EXISTENCE.match(q):
        return True
    first = q.split(" ", 1)[0]
    return first in ("is", "are", "does", "do", "can") and any(f" {v}" in f" {q}" for v in _EXISTENCE_VERBS)


def _answer_polarity(answer: str, canonical: str, claims: list[Claim]) -> str | None:
    pol = polarity(answer_tokens(answer))
    if pol is not None:
        return pol
    about = [c for c in claims if c.canonical == canonical]
    if about:
        return "no" if about[0].denies else ("yes" if not about[0].negated else None)
    return None


def existence_check(obj: str, stated: str, ev: Evidence, vocab: Vocabulary) -> Check | None:
    """`stated` is 'yes' (it is there) or 'no'."""
    if obj in ev.present:
        truth = "yes"
    elif ev.absent(obj, vocab):
        truth = "no"
    else:
        return None
    ok = stated == truth
    return Check("existence", ok, None if ok else reason(EXISTENCE_MISMATCH, obj, f"{stated}!={truth}"), obj)


def count_check(obj: str, stated: int, op: str, ev: Evidence, vocab: Vocabulary) -> Check | None:
    """A stated count (`op` 'eq' or 'ge' for "at least") against annotated counts."""
    texts = ev.text_counts.get(obj, set())
    if ev.coco_exhaustive and vocab.is_coco(obj) and (obj in ev.coco_counts or obj in ev.crowd):
        n = ev.coco_counts[obj]
        crowd = obj in ev.crowd
        truth = f">={n}" if crowd else str(n)
        if op == "ge":
            ok = crowd or n >= stated
        else:
            ok = (stated >= n if crowd else stated == n) or stated in texts
    elif obj in ev.vg_counts:
        lo, hi = ev.vg_counts[obj]
        truth = str(lo) if lo == hi else f"{lo}-{hi}"
        ok = (hi >= stated) if op == "ge" else (lo <= stated <= hi or stated in texts)
    elif texts:
        truth = "|".join(str(t) for t in sorted(texts))
        ok = (max(texts) >= stated) if op == "ge" else stated in texts
    else:
        return None
    shown = f">={stated}" if op == "ge" else str(stated)
    return Check("count", ok, None if ok else reason(COUNT_MISMATCH, obj, f"{shown}!={truth}"), obj)


def colour_check(obj: str, colours: list[str], ev: Evidence) -> Check | None:
    """Colours given to an object; passes when one of them is an annotated colour of it."""
    known = ev.colours.get(obj)
    if not known or not colours:
        return None
    ok = any(c in known for c in colours)
    return Check("attribute", ok, None if ok else reason(ATTRIBUTE_MISMATCH, obj, colours[0]), obj)


def _question_led_checks(
    subject: str, q_norm: str, answer: str, done: list[Check], ev: Evidence, vocab: Vocabulary
) -> list[Check]:
    """A bare answer to "How many X?" ("Three."), "What colour is the X?" ("Red.") or "Is the X
    red?" ("Yes.") is about X."""
    out: list[Check] = []
    counted = any(c.kind == "count" and c.obj == subject for c in done)
    nums = text_numbers(answer) if q_norm.startswith("how many") and not counted else []
    if nums and (chk := count_check(subject, nums[0], "eq", ev, vocab)):
        out.append(chk)
    coloured = any(c.kind == "attribute" and c.obj == subject for c in done)
    colours = text_colours(answer) if ("color" in q_norm or "colour" in q_norm) and not coloured else []
    if not colours and not coloured and _YESNO_OPENER.match(q_norm):
        colours = text_colours(q_norm) if polarity(answer_tokens(answer)) == "yes" else []
    if colours and (chk := colour_check(subject, colours, ev)):
        out.append(chk)
    return out


def turn_checks(question: str, answer: str, ev: Evidence, vocab: Vocabulary) -> tuple[list[Check], list[str]]:
    """Every rule check of one (user question, assistant answer) pair, and the objects the answer
    asserts (canonical names, in order)."""
    q_norm = normalize_text(question)
    q_claims = [c for c in text_claims(question, vocab) if not c.negated]
    a_claims = text_claims(answer, vocab)
    checks: list[Check] = []
    handled: set[str] = set()

    subject = q_claims[0].canonical if q_claims else None
    if subject and _is_existence_question(q_norm):
        stated = _answer_polarity(answer, subject, a_claims)
        # "Is there a green circle?" - "No" denies the green one, not every circle.
        if stated == "no" and q_claims[0].colours:
            stated = None
        if stated and (chk := existence_check(subject, stated, ev, vocab)):
            checks.append(chk)
            handled.add(subject)

    asserted: list[str] = []
    for cl in a_claims:
        if cl.negated:
            if (
                cl.denies
                and cl.canonical not in handled
                and (chk := existence_check(cl.canonical, "no", ev, vocab))
            ):
                checks.append(chk)
                handled.add(cl.canonical)
            continue
        if cl.canonical not in asserted:
            asserted.append(cl.canonical)
            if cl.canonical not in handled and ev.decidable(cl.canonical, vocab):
                ok = cl.canonical in ev.present
                checks.append(
                    Check(
                        "object", ok, None if ok else reason(HALLUCINATED_OBJECT, cl.canonical), cl.canonical
                    )
                )
        if cl.canonical in ev.present:
            if cl.count is not None and (chk := count_check(cl.canonical, cl.count, cl.count_op, ev, vocab)):
                checks.append(chk)
            if chk := colour_check(cl.canonical, cl.colours, ev):
                checks.append(chk)

    if subject and subject in ev.present:
        checks += _question_led_checks(subject, q_norm, answer, checks, ev, vocab)
    return checks, asserted
