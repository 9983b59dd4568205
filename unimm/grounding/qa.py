"""Agreement with the annotated questions (VQAv2, OK-VQA, A-OKVQA, VG QA, VisDial rounds).

A generated question that restates an annotated question (rapidfuzz token_sort_ratio on the
normalised text >= `question_match`) makes its answer checkable:
- yes/no questions (annotated canonical answer yes or no): the generated answer must not open with
  the opposite polarity; an answer opening with neither is not checkable;
- count questions (annotated canonical answer a number): numbers in the generated answer must
  include an annotated one; an answer without numbers is not checkable;
- open questions (when `check_open_answers`): the normalised answer must contain, or fuzzily
  equal, an annotated answer / the canonical answer / the correct choice.

A yes/no or count contradiction is `grounding_contradiction:<kind>`; an open answer that differs
only lowers the score (`qa_mismatch:open`), since it may be a paraphrase.
"""

from __future__ import annotations

from rapidfuzz import fuzz, process

from unimm.filter.config import FilterConfig
from unimm.filter.normalize import answer_tokens, normalize_answer, normalize_text, numbers_in, polarity
from unimm.grounding.checks import Check
from unimm.schema import MergedQA


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


def qa_check(
    question: str, answer: str, qas: list[MergedQA], questions: list[str], cfg: FilterConfig
) -> Check | None:
    """Agreement of one answer with the annotated QA whose question it restates (None when no
    annotated question matches or the answer is not checkable). `questions` are the normalised
    questions of `qas`, computed once per image."""
    if not questions:
        return None
    hit = process.extractOne(
        normalize_text(question), questions, scorer=fuzz.token_sort_ratio, score_cutoff=cfg.question_match
    )
    if hit is None:
        return None
    verdict, kind = check_turn(answer, qas[hit[2]], cfg)
    if verdict is None:
        return None
    # yes/no and count contradictions are hard facts; an open answer that differs may be a paraphrase.
    reason = (
        None if verdict else (f"grounding_contradiction:{kind}" if kind != "open" else "qa_mismatch:open")
    )
    return Check("qa", verdict, reason)
