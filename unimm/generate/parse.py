"""Turn a model's raw text into a validated DialogueResponse, or say precisely why not."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from unimm.placeholder import remove_placeholders
from unimm.schema import DialogueResponse

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class OutputError(Exception):
    """The model's answer is not a usable dialogue; `reason` is a GenerationFailure reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:500]


def parse_json(text: str | None, finish_reason: str | None = None) -> object:
    """The JSON value in a model's answer (a Markdown fence around it is tolerated)."""
    if not text or not text.strip():
        raise OutputError("empty_output", f"finish_reason={finish_reason}")
    body = text.strip()
    if m := _FENCE.match(body):  # servers without constrained decoding often wrap JSON in a fence
        body = m.group(1)
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        reason = "truncated" if finish_reason == "length" else "invalid_json"
        raise OutputError(reason, f"{e.msg} at char {e.pos}: {body[:200]!r}") from e


def validate_as(model: type[M], data: object) -> M:
    """`data` as `model`, or an OutputError("schema_mismatch") naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise OutputError("schema_mismatch", f"{loc}: {err['msg']} ({e.error_count()} errors)") from e


def parse_response(text: str | None, finish_reason: str | None = None) -> DialogueResponse:
    """Validate `text` against DialogueResponse (constrained decoding is never trusted)."""
    data = parse_json(text, finish_reason)
    if isinstance(data, dict):
        # The shard writer adds the one image placeholder; a model-written one would duplicate it.
        for turn in data.get("turns") or []:
            if isinstance(turn, dict):
                for field in ("question", "answer"):
                    if isinstance(turn.get(field), str):
                        turn[field] = remove_placeholders(turn[field])
    return validate_as(DialogueResponse, data)
