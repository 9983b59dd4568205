"""Boilerplate and leakage: refusals/AI disclaimers, mentions of captions/annotations/datasets,
JSON or chat-template markup, and echoes of the generation prompt's instruction lines."""

from __future__ import annotations

import re
from functools import lru_cache

from unimm.filter.config import FilterConfig
from unimm.filter.normalize import words
from unimm.schema import Chat


@lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I) if patterns else None


@lru_cache(maxsize=16)
def prompt_ngrams(prompt_text: str, n: int) -> frozenset[tuple[str, ...]]:
    """Word n-grams of every instruction line of the prompt (lines shorter than n give none)."""
    grams: set[tuple[str, ...]] = set()
    for line in prompt_text.splitlines():
        w = words(line)
        grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    return frozenset(grams)


def echoes_prompt(text: str, grams: frozenset[tuple[str, ...]], n: int) -> bool:
    """True when `text` contains n consecutive words verbatim (after normalisation) from the prompt."""
    if not grams:
        return False
    w = words(text)
    return any(tuple(w[i : i + n]) in grams for i in range(len(w) - n + 1))


def boilerplate_reasons(chat: Chat, cfg: FilterConfig) -> list[str]:
    """Reason codes `refusal`, `annotation_leak`, `markup_leak`, `prompt_echo` that apply."""
    checks = [
        ("refusal", _compile(tuple(cfg.refusal_patterns)), ("user", "assistant")),
        ("annotation_leak", _compile(tuple(cfg.leak_patterns)), ("user", "assistant")),
        ("markup_leak", _compile(tuple(cfg.markup_patterns)), ("user", "assistant")),
    ]
    reasons = []
    for code, rx, roles in checks:
        if rx is not None and any(t.role in roles and rx.search(t.content) for t in chat.turns):
            reasons.append(code)
    grams = prompt_ngrams(cfg.prompt_text, cfg.echo_ngram)
    if any(echoes_prompt(t.content, grams, cfg.echo_ngram) for t in chat.turns):
        reasons.append("prompt_echo")
    return reasons
