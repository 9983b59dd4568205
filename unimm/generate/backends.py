"""What every LLM backend offers the runner: one async `complete` call and typed errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ResponseSchema:
    """The JSON an answer must match: constrained decoding and the OpenAI `json_schema` envelope
    (which needs a name) are built from it."""

    name: str
    schema: dict


@dataclass(frozen=True)
class Completion:
    """One model answer and its token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class TransientError(Exception):
    """Worth retrying after a backoff: 429, 5xx, timeouts, refused connections."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:500]
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help (bad request, authentication, unknown model)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:500]


class LLMBackend(Protocol):
    """One interface for the in-process and the HTTP backends."""

    name: str
    model: str
    max_concurrency: int

    async def complete(self, messages: list[dict[str, Any]], seed: int) -> Completion: ...

    async def aclose(self) -> None: ...
