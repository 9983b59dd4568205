"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, OpenAI).

The client's own retries are off (max_retries=0): the runner owns the retry policy so every
retry is counted and backed off the same way. Each server gets the response-format shape it
honours: vLLM the OpenAI `json_schema` envelope, llama-cpp-python's server `json_object` with a
`schema` (it answers the envelope with HTTP 500); `auto` asks `/v1/models` who serves, and falls
back to `json_object` when the envelope is refused. The output is validated either way.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import openai

from unimm.errors import ConfigError
from unimm.generate.backends import Completion, PermanentError, ResponseSchema, TransientError
from unimm.generate.config import GenerateConfig
from unimm.generate.prompts import SCHEMA_NAME, dialogue_response

# Words a server uses when it rejects the response_format it was sent (not a real outage).
_FORMAT_REJECTION = ("response_format", "json_schema", "validation", "extra inputs", "unprocessable")


def response_format_body(fmt: str, schema: dict, name: str = SCHEMA_NAME) -> dict | None:
    """The `response_format` request field for one of the shapes servers honour."""
    if fmt == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if fmt == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def format_for_owner(owned_by: str | None) -> str:
    """Guess the shape from `/v1/models` `owned_by` ("vllm"; llama-cpp-python says "me")."""
    owner = (owned_by or "").lower()
    if owner in {"me", "llamacpp", "llama.cpp", "llama-cpp"} or "llama" in owner:
        return "json_object"
    return "json_schema"


def _retry_after(e: openai.APIStatusError) -> float | None:
    try:
        value = e.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None


class OpenAIBackend:
    """Round-robin over base URLs; many requests in flight (the runner bounds them)."""

    name = "openai"

    def __init__(self, cfg: GenerateConfig, model: str, response: ResponseSchema | None = None) -> None:
        if not cfg.base_urls:
            raise ConfigError("--llm openai needs at least one --base-url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.model = model
        self.max_concurrency = cfg.concurrency
        # Local servers need no key, but the client insists on one; the placeholder is not secret.
        key = cfg.api_key() or "EMPTY"
        self._clients = [
            openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=cfg.timeout_s)
            for url in cfg.base_urls
        ]
        self._formats: list[str | None] = [
            None if cfg.response_format == "auto" else cfg.response_format for _ in cfg.base_urls
        ]
        self._detect_locks = [asyncio.Lock() for _ in cfg.base_urls]
        self._next = itertools.count()
        self.response = response or dialogue_response()
        self.format_fallbacks = 0

    def formats(self) -> dict[str, str | None]:
        """Base URL -> the response-format shape in use (for the run summary)."""
        return dict(zip(self.cfg.base_urls, self._formats, strict=True))

    async def _format(self, i: int) -> str:
        fmt = self._formats[i]
        if fmt is not None:
            return fmt
        async with self._detect_locks[i]:
            if self._formats[i] is None:
                try:
                    models = await self._clients[i].models.list()
                    owners = {m.id: getattr(m, "owned_by", None) for m in models.data}
                    owner = owners.get(self.model) or next(iter(owners.values()), None)
                    self._formats[i] = format_for_owner(owner)
                except openai.OpenAIError:
                    # Unreachable just now: try the standard shape; a refusal falls back below.
                    return "json_schema"
        return self._formats[i] or "json_schema"

    async def complete(self, messages: list[dict[str, str]], seed: int) -> Completion:
        i = next(self._next) % len(self._clients)
        fmt = await self._format(i)
        try:
            return await self._create(i, messages, seed, fmt)
        except openai.APIStatusError as e:
            text = str(e).lower()
            if (
                self.cfg.response_format == "auto"
                and fmt == "json_schema"
                and e.status_code in (400, 422, 500)
                and any(w in text for w in _FORMAT_REJECTION)
            ):
                self._formats[i] = "json_object"
                self.format_fallbacks += 1
                return await self._guarded(i, messages, seed, "json_object")
            raise self._classify(e) from e
        except openai.OpenAIError as e:
            raise self._classify(e) from e

    async def _guarded(self, i: int, messages: list[dict[str, str]], seed: int, fmt: str) -> Completion:
        try:
            return await self._create(i, messages, seed, fmt)
        except openai.OpenAIError as e:
            raise self._classify(e) from e

    async def _create(self, i: int, messages: list[dict[str, str]], seed: int, fmt: str) -> Completion:
        kwargs: dict[str, Any] = {}
        body = response_format_body(fmt, self.response.schema, self.response.name)
        if body is not None:
            kwargs["response_format"] = body
        resp = await self._clients[i].chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=self.cfg.max_tokens,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            seed=seed,
            **kwargs,
        )
        if not resp.choices:
            raise TransientError("empty_response", "no choices in the response")
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )

    @staticmethod
    def _classify(e: openai.OpenAIError) -> Exception:
        # Messages are the server's error text; the client never puts the key in them.
        if isinstance(e, openai.APITimeoutError):
            return TransientError("timeout", str(e))
        if isinstance(e, openai.APIConnectionError):
            return TransientError("connection_error", str(e))
        if isinstance(e, openai.APIStatusError):
            if e.status_code == 429 or e.status_code >= 500 or e.status_code == 408:
                return TransientError(f"http_{e.status_code}", str(e), _retry_after(e))
            return PermanentError(f"http_{e.status_code}", str(e))
        if isinstance(e, openai.APIResponseValidationError):
            return TransientError("bad_response", str(e))
        return PermanentError("client_error", str(e))

    async def aclose(self) -> None:
        for c in self._clients:
            await c.close()
