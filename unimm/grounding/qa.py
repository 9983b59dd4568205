"""Grounding against the source annotations.

A generated question that restates an annotated question (rapidfuzz token_sort_ratio on the
normalised text >= `question_match`) makes its answer checkable:
- yes/no questions (annotated canonical answer yes or no): the generated answer must not open with
  the opposite polarity; an answer opening with neither is not checkable;
- count questions (annotated canonical answer a number): numbers in the generated answer must
  include an annotated one; an answer without numbers is not checkable;
- open questions (when `check_open_answers`): the normalised answer must contain, or fuzzily
  equal, an annotated answer / the canonical answer / the correct choice.

Score = agreeing checkable turns / checkable turns. Policy when nothing is checkable: the score is
None ("not verifiable", never a reason to reject, and distinguishable from a verified 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from unimm.filter.config import FilterConfig
from unimm.filter.normalize import answer_tokens, normalize_answer, normalize_text, numbers_in, polarity
from unimm.schema import Chat, MergedImage, MergedQA


@dataclass
class Grounding:
    """Per-dialogue grounding outcome: score (None when nothing was checkable) and the kinds of
    contradictions found (`yesno`, `count`, `answer`)."""

    score: float | None
    checked: int = 0
    agreed: int = 0
    contradictions: list[str] = field(default_factory=list)


def annotated_answers(qa: MergedQA) -> set[str]:
    """Normalised annotated answers of a QA: canonical, every human answer (and raw), correct choice."""
    raw = [qa.answer] if qa.answer else []
    for a in qa.answers:
        raw.append(a.text)
        if a.raw:
            raw.append(a.raw)
    if qa.correct_choice is not None and 0 <= qa.correct_choice < len(qa.choices):
        raw.append(qa.choices[qa.correct_choice])
    return {n for n in (normalize_answer(x) for x in raw) if n}


def answer_kind(qa: MergedQA, answers: set[str]) -> str:
    """`yesno`, `count` or `open`, from the canonical answer (else the most frequent human answer)."""
    canon = normalize_answer(qa.answer) if qa.answer else ""
    if not canon and qa.answers:
        texts = [normalize_answer(a.text) for a in qa.answers]
        canon = max(sorted(set(texts)), key=texts.count)
    if canon in ("yes", "no"):
        return "yesno"
    if numbers_in(canon.split()) and len(canon.split()) == 1:
        return "count"
    return "open"


def _contains(hay: str, needle: str) -> bool:
    return f" {needle} " in f" {hay} "


def check_turn(answer: str, qa: MergedQA, cfg: FilterConfig) -> tuple[bool | None, str]:
    """(True agree / False contradict / None not checkable, kind) for one answer to one annotated QA."""
    answers = annotated_answers(qa)
    kind = answer_kind(qa, answers)
    toks = answer_tokens(answer)
    if kind == "yesno":
        pol = polarity(toks)
        if pol is None:
            return None, kind
        canon = normalize_answer(qa.answer) if qa.answer else None
        allowed = {canon} if canon in ("yes", "no") else answers & {"yes", "no"}
        return pol in allowed, kind
    if kind == "count":
        nums = numbers_in(toks)
        if not nums:
            return None, kind
        return bool(nums & numbers_in(sorted(answers))), kind
    if not cfg.check_open_answers or not answers:
        return None, kind
    norm = " ".join(toks)
    ok = any(_contains(norm, a) or fuzz.ratio(norm, a) >= cfg.answer_match for a in answers)
    return ok, kind


def ground(chat: Chat, merged: MergedImage | None, cfg: FilterConfig) -> Grounding:
    """Check every (user question, assistant answer) pair against the image's annotated QAs."""
    if merged is None or not merged.qas:
        return Grounding(score=None)
    questions = [normalize_text(q.question) for q in merged.qas]
    g = Grounding(score=None)
    for i in range(0, len(chat.turns) - 1, 2):
        q, a = chat.turns[i], chat.turns[i + 1]
        if q.role != "user" or a.role != "assistant":
            continue
        hit = process.extractOne(
            normalize_text(q.content),
            questions,
            scorer=fuzz.token_sort_ratio,
            score_cutoff=cfg.question_match,
        )
        if hit is None:
            continue
        verdict, kind = check_turn(a.content, merged.qas[hit[2]], cfg)
        if verdict is None:
            continue
        g.checked += 1
        if verdict:
            g.agreed += 1
        elif kind not in g.contradictions:
            g.contradictions.append(kind)
    g.score = g.agreed / g.checked if g.checked else None
    return g
