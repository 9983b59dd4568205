"""The image placeholder rule (unimm.placeholder), which the writer, readers and checks share."""

from __future__ import annotations

from unimm.placeholder import (
    IMAGE_PREFIX,
    count_placeholders,
    has_placeholder,
    image_turn,
    placeholder_ok,
    remove_placeholders,
    with_placeholder,
    without_placeholder,
)
from unimm.schema import IMAGE_PLACEHOLDER, Turn


def _turns(*contents: str) -> list[Turn]:
    return [Turn(role="user" if i % 2 == 0 else "assistant", content=c) for i, c in enumerate(contents)]


def test_add_and_take_off() -> None:
    assert IMAGE_PREFIX == IMAGE_PLACEHOLDER + "\n"
    assert with_placeholder("What is it?") == "<image>\nWhat is it?"
    assert without_placeholder(with_placeholder("What is it?")) == "What is it?"
    assert without_placeholder("What <image> is it?") == "What <image> is it?"  # only the shard prefix
    assert remove_placeholders("What is it?\n<image>") == "What is it?"
    assert remove_placeholders("<image> a <image>b ") == "a b"


def test_the_rule() -> None:
    shard = _turns(with_placeholder("Q?"), "A.", "Q2?", "A2.")
    assert placeholder_ok(shard) and placeholder_ok(shard, opening=False)
    assert count_placeholders(shard) == 1 and has_placeholder(shard) and image_turn(shard) == 0
    inside = _turns("Look: <image> what?", "A.")
    assert not placeholder_ok(inside) and placeholder_ok(inside, opening=False)
    assert not placeholder_ok(_turns("<image>Q?", "A."))  # no newline after it
    assert not placeholder_ok(_turns(with_placeholder("Q?"), "A.", "<image> again", "A."), opening=False)
    assert not placeholder_ok(_turns(with_placeholder(with_placeholder("Q?")), "A."), opening=False)
    assert not placeholder_ok(_turns("Q?", "A <image>."), opening=False)
    plain = _turns("Q?", "A.")
    assert not placeholder_ok(plain) and not has_placeholder(plain) and count_placeholders(plain) == 0
    assert image_turn([Turn(role="assistant", content="A.")]) is None
