"""Chat rendering for training: turns -> token ids + labels.

ChatML (`<|im_start|>role\\n ... <|im_end|>\\n`, SmolLM2's own template) when the vocabulary has
those specials, else a plain `User: / Assistant:` template ended by EOS. The single `<image>`
placeholder becomes `num_visual_tokens` copies of the reserved image id. Labels are the
assistant contents plus their end-of-turn token; everything else is -100. Truncation keeps the
head of the dialogue and never cuts inside the image tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from unimm.errors import ConfigError, InputError
from unimm.placeholder import (
    IMAGE_PLACEHOLDER,
    count_placeholders,
    image_turn,
    placeholder_ok,
    with_placeholder,
)
from unimm.schema import Turn
from unimm.train.tokenizer import IM_END, IM_START, Tokenizer

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    image_start: int
    """Index of the first image token; the block spans image_start .. image_start + n_visual."""


class ChatTemplate:
    """Renders dialogues with one tokenizer and a fixed number of visual tokens per image."""

    def __init__(
        self, tok: Tokenizer, num_visual_tokens: int, max_len: int, system_prompt: str | None = None
    ):
        self.tok, self.n_visual, self.max_len, self.system_prompt = (
            tok,
            num_visual_tokens,
            max_len,
            system_prompt,
        )
        start, end = tok.special(IM_START), tok.special(IM_END)
        if start is not None and end is not None:
            self._open: list[int] = [start]
            self.eot = end
            self._header = "{role}\n"
            self._after = tok.encode("\n")
        else:
            eos = getattr(tok, "eos", lambda: None)()
            if eos is None:
                raise ConfigError(f"{tok.name}: neither ChatML specials nor an EOS token to end a turn")
            self._open, self.eot, self._header, self._after = [], int(eos), "{Role}: ", tok.encode("\n")
        # the longest prefix before the image: system turn + user header; the image must fit after it
        head = (
            len(self._system_ids())
            + len(self._open)
            + len(tok.encode(self._header.format(role="user", Role="User")))
        )
        if head + num_visual_tokens + 1 > max_len:
            raise ConfigError(
                f"max_len {max_len} leaves no room for {num_visual_tokens} image tokens after a {head}-token prefix"
            )

    def _role_header(self, role: str) -> list[int]:
        # two distinct headers, rendered millions of times: tokenise each once
        cache = self.__dict__.setdefault("_headers", {})
        if role not in cache:
            cache[role] = self._open + self.tok.encode(self._header.format(role=role, Role=role.capitalize()))
        return cache[role]

    def _system_ids(self) -> list[int]:
        if not self.system_prompt:
            return []
        body = self.tok.encode(self._header.format(role="system", Role="System") + self.system_prompt)
        return self._open + body + [self.eot] + self._after

    def encode(self, turns: list[Turn], *, source: str = "<chat>", key: str | None = None) -> Encoded:
        """Render `turns` (the first user turn carries the only `<image>`); raises InputError naming
        `source`, `key` and the turn when the placeholder is missing, repeated or misplaced."""
        _check_placeholder(turns, source, key)
        ids: list[int] = self._system_ids()
        labels: list[int] = [IGNORE] * len(ids)
        image_start = -1
        for turn in turns:
            header = self._role_header(turn.role)
            ids += header
            labels += [IGNORE] * len(header)
            if turn.role == "user":
                if IMAGE_PLACEHOLDER in turn.content:
                    pre, post = turn.content.split(IMAGE_PLACEHOLDER)
                    body = self.tok.encode(pre)
                    image_start = len(ids) + len(body)
                    body += [self.tok.image_token_id] * self.n_visual + self.tok.encode(post)
                else:
                    body = self.tok.encode(turn.content)
                body += [self.eot]
                ids += body
                labels += [IGNORE] * len(body)
            else:
                body = self.tok.encode(turn.content) + [self.eot]
                ids += body
                labels += body
            ids += self._after
            labels += [IGNORE] * len(self._after)
        if image_start + self.n_visual > self.max_len:
            raise InputError(
                source,
                f"text before the image needs {image_start} tokens; max_len {self.max_len} would cut the image",
                record=key,
                field="turns[0].content",
            )
        return Encoded(ids[: self.max_len], labels[: self.max_len], image_start)


def _check_placeholder(turns: list[Turn], source: str, key: str | None) -> None:
    if not placeholder_ok(turns, opening=False):
        where = image_turn(turns) or 0
        raise InputError(
            source,
            f"expected exactly one {IMAGE_PLACEHOLDER} placeholder, in the first user turn (found {count_placeholders(turns)})",
            record=key,
            field=f"turns[{where}].content",
        )
    if not any(t.role == "assistant" for t in turns):
        raise InputError(source, "no assistant turn to supervise", record=key, field="turns")


def pretrain_turns(turns: list[Turn], prompt: str | None = None) -> list[Turn]:
    """Stage-1 (caption-style) view of a dialogue: the image turn and the first assistant answer.

    With `prompt`, the user text is replaced by `<image>\\n{prompt}` (e.g. "Describe the image.")."""
    user = next(t for t in turns if t.role == "user")
    answer = next(t for t in turns if t.role == "assistant")
    if prompt is not None:
        user = Turn(role="user", content=with_placeholder(prompt))
    return [user, answer]
