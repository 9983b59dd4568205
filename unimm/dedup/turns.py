"""Duplicate turns inside one dialogue: a (question, answer) pair whose question repeats an
earlier one exactly (after normalisation) or nearly (rapidfuzz ratio), or whose long answer
repeats an earlier answer, is dropped; the first occurrence stays."""

from __future__ import annotations

from rapidfuzz import fuzz

from unimm.dedup.config import DedupConfig
from unimm.filter.normalize import normalize_text
from unimm.schema import Chat


def dedup_turns(chat: Chat, cfg: DedupConfig) -> tuple[Chat, int, int]:
    """(chat without repeated pairs, exact pairs dropped, near pairs dropped). Turns after the last
    complete user/assistant pair are kept as they are (the filter rejects such dialogues)."""
    kept_turns = []
    questions: list[str] = []
    answers: set[str] = set()
    exact = near = 0
    turns = chat.turns
    for i in range(0, len(turns) - 1, 2):
        q, a = turns[i], turns[i + 1]
        nq, na = normalize_text(q.content), normalize_text(a.content)
        if nq in questions or (len(na.split()) >= cfg.identical_answer_min_words and na in answers):
            exact += 1
            continue
        if any(fuzz.ratio(nq, prev) >= cfg.turn_near_threshold for prev in questions):
            near += 1
            continue
        questions.append(nq)
        answers.add(na)
        kept_turns += [q, a]
    kept_turns += turns[len(turns) - len(turns) % 2 :]
    if not exact and not near:
        return chat, 0, 0
    return chat.model_copy(update={"turns": kept_turns}), exact, near
