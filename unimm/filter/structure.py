"""Structure checks: role alternation, empty turns, turn count and length, image placeholder."""

from __future__ import annotations

from unimm.filter.config import FilterConfig
from unimm.placeholder import has_placeholder, placeholder_ok
from unimm.schema import Chat


def structure_reasons(chat: Chat, cfg: FilterConfig) -> list[str]:
    """Reason codes for a malformed dialogue (empty list when well-formed)."""
    reasons: list[str] = []
    turns = chat.turns
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    if [t.role for t in turns] != expected[: len(turns)] or len(turns) % 2:
        reasons.append("bad_role_order")
    if any(not t.content.strip() for t in turns):
        reasons.append("empty_turn")
    if len(turns) < cfg.min_turns:
        reasons.append("too_few_turns")
    if len(turns) > cfg.max_turns:
        reasons.append("too_many_turns")
    lengths = [len(t.content.strip()) for t in turns if t.content.strip()]
    if any(n < cfg.min_turn_chars for n in lengths):
        reasons.append("turn_too_short")
    if any(n > cfg.max_turn_chars for n in lengths):
        reasons.append("turn_too_long")
    if cfg.exported:
        if not (turns[0].role == "user" and placeholder_ok(turns, opening=False)):
            reasons.append("placeholder_count")
    elif has_placeholder(turns):
        reasons.append("unexpected_placeholder")
    return reasons
