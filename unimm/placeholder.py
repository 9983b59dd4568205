"""The image placeholder rule, stated once.

In shards (and everything exported from them) the first user turn starts with exactly one
`<image>` followed by a newline, and no other turn has one: the shard writer adds it
(`with_placeholder`), exports and readers take it off again (`without_placeholder`), and the
checks of the filter, the shard verifier and the training template test it (`placeholder_ok`).
Before export, dialogues carry no placeholder at all (`has_placeholder` is false); text from
elsewhere (an LLM's output, a corpus unimm did not write) may have it anywhere and loses every
copy (`remove_placeholders`).

Functions take any turns with `role` and `content` (unimm.schema.Turn), so this module imports
nothing of unimm and `unimm.schema` can take IMAGE_PLACEHOLDER from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

IMAGE_PLACEHOLDER = "<image>"
IMAGE_PREFIX = f"{IMAGE_PLACEHOLDER}\n"  # what opens the first user turn of a shard sample


class _Turn(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str: ...


def with_placeholder(text: str) -> str:
    """The first user turn's text in shard form: `"<image>\\n" + text`."""
    return IMAGE_PREFIX + text


def without_placeholder(text: str) -> str:
    """A turn's text without the shard form's leading `"<image>\\n"` (other text unchanged)."""
    return text.removeprefix(IMAGE_PREFIX)


def remove_placeholders(text: str) -> str:
    """Text without any `<image>`, wherever it stands (LLaVA puts it first or last, with a
    newline; an LLM may echo it), stripped of surrounding whitespace."""
    return text.replace(IMAGE_PLACEHOLDER, "").strip()


def count_placeholders(turns: Sequence[_Turn]) -> int:
    """`<image>` placeholders in all turns together."""
    return sum(t.content.count(IMAGE_PLACEHOLDER) for t in turns)


def has_placeholder(turns: Sequence[_Turn]) -> bool:
    """Whether any turn holds a placeholder (a dialogue before export must not)."""
    return any(IMAGE_PLACEHOLDER in t.content for t in turns)


def image_turn(turns: Sequence[_Turn]) -> int | None:
    """Index of the turn that carries the image: the first user turn (None without one)."""
    return next((i for i, t in enumerate(turns) if t.role == "user"), None)


def placeholder_ok(turns: Sequence[_Turn], *, opening: bool = True) -> bool:
    """The rule: the dialogue has exactly one placeholder, in its first user turn, which starts
    with `"<image>\\n"`. With `opening=False` the placeholder may stand anywhere in that turn (a
    chat template splits the turn around it)."""
    i = image_turn(turns)
    if i is None or count_placeholders(turns) != 1:
        return False
    content = turns[i].content
    return content.startswith(IMAGE_PREFIX) if opening else IMAGE_PLACEHOLDER in content
