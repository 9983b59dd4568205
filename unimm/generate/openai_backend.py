"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, OpenAI).

The client's own retries are off (max_retries=0): the runner owns the retry policy so every
retry is counted and backed off the same way. Each server gets the response-format shape it
honours: vLLM the OpenAI `json_schema` envelope, llama-cpp-python's server `json_object` with a
`schema` (it answers the envelope with HTTP 500); `auto` asks `/v1/models` who serves, and falls
back to `json_object` when the envelope is refused. The output is validated either way.

Every failed attempt becomes a TransientError or PermanentError that names the server and never
quotes the API key (servers echo rejected keys); a 200 whose body is no chat completion (truncated
or non-UTF-8 JSON, a text/plain page) is a transient `bad_response`. Timeouts come from
GenerateConfig.timeouts(): a short connect timeout, a read timeout scaled to max_tokens, and a
short one of its own for the `/v1/models` check (and for served_models, which
GenerateConfig.with_served_model asks when no model is given).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from unimm.errors import ConfigError
from unimm.generate.backends import Completion, PermanentError, ResponseSchema, TransientError
from unimm.generate.config import NEEDS_BASE_URL, GenerateConfig
from unimm.generate.prompts import SCHEMA_NAME, dialogue_response
from unimm.redact import redact

# Words a server uses when it rejects the response_format it was sent (not a real outage).
_FORMAT_REJECTION = ("response_format", "json_schema", "validation", "extra inputs", "unprocessable")
# What decoding a broken 200 body raises inside the client (truncated JSON, bytes that are not UTF-8).
_BODY_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)


class _BadBody(Exception):
    """A 200 answer whose body is not a chat completion."""


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


def model_owner(page: object, model: str) -> str | None:
    """`owned_by` of `model` (else of the first model) in a `/v1/models` answer of any shape."""
    models = getattr(page, "data", None)
    if not isinstance(models, list):
        return None
    owners = {getattr(m, "id", None): getattr(m, "owned_by", None) for m in models}
    owner = owners.get(model) or next(iter(owners.values()), None)
    return owner if isinstance(owner, str) else None


def served_models(cfg: GenerateConfig, url: str) -> list[str]:
    """Ids of the models `url` serves (`GET /v1/models`, under the short model-list timeout);
    ConfigError naming the server when it cannot be asked or answers something else."""
    t = cfg.timeouts()
    secret = cfg.api_key()
    client = openai.OpenAI(
        base_url=url,
        api_key=secret or "EMPTY",
        max_retries=0,
        timeout=openai.Timeout(t.models_s, connect=min(t.connect_s, t.models_s)),
    )
    try:
        page = client.models.list()
        ids = [getattr(m, "id", None) for m in getattr(page, "data", None) or []]
    except openai.APIStatusError as e:
        problem = f"answered HTTP {e.status_code}"
    except openai.APIConnectionError as e:  # timeouts included
        problem = f"cannot be reached ({e.__cause__ or e})"
    except (openai.OpenAIError, *_BODY_ERRORS, AttributeError, TypeError) as e:
        problem = f"answered no model list ({type(e).__name__})"
    else:
        return sorted({i for i in ids if isinstance(i, str) and i})
    finally:
        client.close()
    # Servers echo rejected keys: scrub the message before it is shown.
    raise ConfigError(
        redact(
            f"--llm openai without --model: {url}/models {problem}; pass --model or check the server", secret
        )
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def completion_of(resp: object) -> Completion:
    """The answer and token counts of a chat completion; any other body raises _BadBody."""
    if not isinstance(resp, ChatCompletion):
        # The client hands back the decoded text of a body that is not JSON. Not cut here: the
        # error cuts its detail only after the key is scrubbed, so no part of a key survives.
        raise _BadBody(f"not a chat completion: {str(resp)!r}")
    # The client builds the model without validating it: fields may be missing or of any type.
    choices = getattr(resp, "choices", None)
    if not choices:
        raise TransientError("empty_response", "no choices in the response")
    try:
        choice = choices[0]
        content = choice.message.content
        finish_reason = choice.finish_reason
    except (AttributeError, TypeError, IndexError, KeyError) as e:
        raise _BadBody(f"malformed chat completion: {e}") from None
    if not isinstance(content, (str, type(None))):
        raise _BadBody(f"message content is a {type(content).__name__}, not text")
    usage = getattr(resp, "usage", None)
    return Completion(
        text=content or "",
        prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
        completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
    )


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
            raise ConfigError(NEEDS_BASE_URL)
        self.cfg = cfg
        self.model = model
        self.max_concurrency = cfg.concurrency
        # Held only to scrub it from what servers answer; it never leaves this object.
        self._secret = cfg.api_key()
        t = cfg.timeouts()
        self._models_timeout = openai.Timeout(t.models_s, connect=min(t.connect_s, t.models_s))
        # Local servers need no key, but the client insists on one; the placeholder is not secret.
        self._clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=self._secret or "EMPTY",
                max_retries=0,
                timeout=openai.Timeout(t.read_s, connect=t.connect_s),
            )
            for url in cfg.base_urls
        ]
        # Sent with every chat request (the raw `post` adds no auth of its own in every client
        # version); the same header the client would send for this key.
        self._request_options: Any = {"headers": {"Authorization": f"Bearer {self._secret or 'EMPTY'}"}}
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
                    page = await self._clients[i].models.list(timeout=self._models_timeout)
                    self._formats[i] = format_for_owner(model_owner(page, self.model))
                except openai.APITimeoutError:
                    # A hung /v1/models would cost every request this wait again: settle on the
                    # standard shape (a refusal still falls back below).
                    self._formats[i] = "json_schema"
                except (openai.OpenAIError, ValueError, AttributeError, TypeError):
                    # Unreachable just now, or a list the client cannot read (it fails on a body
                    # that is not JSON with AttributeError): try the standard shape.
                    return "json_schema"
        return self._formats[i] or "json_schema"

    def _refuses_format(self, e: openai.APIStatusError, fmt: str) -> bool:
        """Whether the server rejected the json_schema envelope (not a real outage)."""
        text = str(e).lower()
        return (
            self.cfg.response_format == "auto"
            and fmt == "json_schema"
            and e.status_code in (400, 422, 500)
            and any(w in text for w in _FORMAT_REJECTION)
        )

    async def complete(self, messages: list[dict[str, Any]], seed: int) -> Completion:
        """One attempt at a chat completion from the next server in turn."""
        i = next(self._next) % len(self._clients)
        fmt = await self._format(i)
        started = time.monotonic()
        try:
            return await self._create(i, messages, seed, fmt)
        except openai.APIStatusError as e:
            if not self._refuses_format(e, fmt):
                # `from None`: the client's exception holds the server's raw text (maybe the key).
                raise self._classify(e, i, started) from None
            self._formats[i] = "json_object"
            self.format_fallbacks += 1
        except (openai.OpenAIError, _BadBody) as e:
            raise self._classify(e, i, started) from None
        return await self._guarded(i, messages, seed, "json_object")

    async def _guarded(self, i: int, messages: list[dict[str, Any]], seed: int, fmt: str) -> Completion:
        started = time.monotonic()
        try:
            return await self._create(i, messages, seed, fmt)
        except (openai.OpenAIError, _BadBody) as e:
            raise self._classify(e, i, started) from None

    async def _create(self, i: int, messages: list[dict[str, Any]], seed: int, fmt: str) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "seed": seed,
        }
        response_format = response_format_body(fmt, self.response.schema, self.response.name)
        if response_format is not None:
            body["response_format"] = response_format
        try:
            # The client's documented raw `post` (same errors, timeouts and ChatCompletion as
            # `chat.completions.create`) with a body that is already plain JSON: `create` walks
            # every message through its TypedDict transform first, which cost ~4 CPU-ms per
            # request, more than the rest of the client together (benchmarks/bench_client.py).
            resp = await self._clients[i].post(
                "/chat/completions", cast_to=ChatCompletion, body=body, options=self._request_options
            )
        except _BODY_ERRORS as e:
            raise _BadBody(f"{type(e).__name__}: {e}") from None
        return completion_of(resp)

    def _classify(self, e: Exception, i: int, started: float) -> TransientError | PermanentError:
        """The runner's error for a failed attempt: it names the server and never quotes the key."""
        url = self.cfg.base_urls[i]
        transient = True
        retry_after: float | None = None
        if isinstance(e, openai.APITimeoutError):
            reason, detail = "timeout", f"timeout after {time.monotonic() - started:.1f} s waiting for {url}"
        elif isinstance(e, openai.APIConnectionError):
            reason, detail = "connection_error", f"cannot reach {url}: {e.__cause__ or e}"
        elif isinstance(e, openai.APIStatusError):
            reason, detail = f"http_{e.status_code}", f"{url}: {e}"
            transient = e.status_code in (408, 429) or e.status_code >= 500
            retry_after = _retry_after(e)
        elif isinstance(e, (openai.APIResponseValidationError, _BadBody)):
            reason, detail = "bad_response", f"{url} answered 200 with a bad body: {e}"
        else:
            reason, detail, transient = "client_error", str(e), False
        # Scrubbed before the error truncates its detail, so no part of the key survives a cut.
        detail = redact(detail, self._secret)
        return TransientError(reason, detail, retry_after) if transient else PermanentError(reason, detail)

    async def aclose(self) -> None:
        for c in self._clients:
            await c.close()
