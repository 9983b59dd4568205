"""Boilerplate and leakage: refusals/AI disclaimers, mentions of captions/annotations/datasets,
JSON or chat-template markup, and echoes of the generation prompt's instruction lines.

The pattern checks run over every turn of a partition at once, in polars (Rust's regex engine
finds the literal parts of an alternation first: ~60x Python's `re` on template dialogues). A
pattern Rust's engine cannot compile (look-around, back-references) is matched with Python's `re`
instead, with the same result."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import polars as pl

from unimm.filter.config import FilterConfig
from unimm.filter.normalize import words
from unimm.schema import Chat

_ROLES = ("user", "assistant")  # the turns each pattern check reads


def _alternation(patterns: tuple[str, ...]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


@lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile(_alternation(patterns), re.I) if patterns else None


@lru_cache(maxsize=64)
def _rust_compiles(pattern: str) -> bool:
    try:
        pl.Series([""]).str.contains(pattern)
    except pl.exceptions.ComputeError:
        return False
    return True


def _matches(texts: pl.Series, patterns: tuple[str, ...]) -> pl.Series:
    """Per text: whether any of `patterns` occurs (case-insensitive)."""
    pattern = "(?i)" + _alternation(patterns)
    if _rust_compiles(pattern):
        return texts.str.contains(pattern)
    rx = _compile(patterns)
    assert rx is not None
    return pl.Series([rx.search(t) is not None for t in texts.to_list()], dtype=pl.Boolean)


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


def boilerplate_reasons_batch(chats: Sequence[Chat], cfg: FilterConfig) -> list[list[str]]:
    """Per chat, the reason codes `refusal`, `annotation_leak`, `markup_leak`, `prompt_echo` that
    apply, in that order."""
    turns = pl.DataFrame(
        {
            "chat": [i for i, c in enumerate(chats) for _ in c.turns],
            "role": [t.role for c in chats for t in c.turns],
            "content": [t.content for c in chats for t in c.turns],
        },
        schema={"chat": pl.Int64, "role": pl.Utf8, "content": pl.Utf8},
    )
    read = turns.filter(pl.col("role").is_in(_ROLES))
    hits: list[tuple[str, set[int]]] = []
    for code, patterns in (
        ("refusal", cfg.refusal_patterns),
        ("annotation_leak", cfg.leak_patterns),
        ("markup_leak", cfg.markup_patterns),
    ):
        if patterns:
            found = read.filter(_matches(read["content"], tuple(patterns)))["chat"]
            hits.append((code, set(found.to_list())))
    grams = prompt_ngrams(cfg.prompt_text, cfg.echo_ngram)
    if grams:
        echoed = {
            i
            for i, c in enumerate(chats)
            if any(echoes_prompt(t.content, grams, cfg.echo_ngram) for t in c.turns)
        }
        hits.append(("prompt_echo", echoed))
    return [[code for code, found in hits if i in found] for i in range(len(chats))]
