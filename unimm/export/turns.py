"""A chat's turns in the shapes consumers read: LLaVA's {from, value} and HF's {role, content}."""

from __future__ import annotations

from unimm.placeholder import without_placeholder
from unimm.schema import Chat

ROLE_TO_FROM = {"user": "human", "assistant": "gpt"}


def conversations(chat: Chat, *, with_image: bool = True) -> list[dict[str, str]]:
    """Turns as LLaVA `{"from": "human"|"gpt", "value"}`.

    With an image the shard's "<image>\\n" stays at the start of the first human turn, where
    LLaVA and Muffin expect it; without one it is removed, since LLaVA reads a record with no
    `image` key as text-only and would otherwise tokenize the placeholder as words."""
    return [
        {"from": ROLE_TO_FROM[t.role], "value": t.content if with_image else without_placeholder(t.content)}
        for t in chat.turns
    ]


def messages(chat: Chat) -> list[dict[str, str]]:
    """Turns as `{"role": "user"|"assistant", "content"}`, the placeholder removed: the image is
    its own column and a processor's chat template inserts its image tokens itself."""
    return [{"role": t.role, "content": without_placeholder(t.content)} for t in chat.turns]
