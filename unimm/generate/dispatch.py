"""Send content-addressed LLM requests through the response cache: the machinery generation and the
LLM judge share.

`send_all` answers every request from the cache when it can, sends the rest (identical requests
once) with bounded concurrency, retries transient errors with jittered exponential backoff and
output the caller's `parse` rejects with a new seed, and persists each finished request before it
counts as done. What a request means (a dialogue, a verdict list) is the caller's business: `parse`
turns a completion into the JSON fields to cache, or raises OutputError.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from unimm.generate.backends import Completion, LLMBackend, PermanentError, ResponseSchema, TransientError
from unimm.generate.cache import ResponseCache
from unimm.generate.config import GenerateConfig
from unimm.generate.parse import OutputError

T = TypeVar("T")
Message = dict[str, Any]

# Failures worth re-sending on the next run: the server, not the request, was the problem.
TRANSIENT_REASONS_PREFIX = (
    "http_429",
    "http_5",
    "timeout",
    "connection_error",
    "empty_response",
    "bad_response",
)


@dataclass(frozen=True)
class Request:
    """One content-addressed request. `parse` returns the fields cached with an ok answer (or
    raises OutputError); `meta` is stored with the entry for people reading the cache.
    `messages` may be a function that builds them when the request is sent (a picture is only
    encoded then, in a worker thread); one that raises PermanentError fails the request unsent."""

    rid: str
    messages: list[Message] | Callable[[], list[Message]]
    parse: Callable[[Completion], dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def make_backend(cfg: GenerateConfig, model: str, response: ResponseSchema | None = None) -> LLMBackend:
    """The backend `cfg.backend` names, constrained to `response` (default: a dialogue)."""
    if cfg.backend == "local":
        from unimm.generate.local import LocalBackend

        return LocalBackend(cfg, model, response)
    if cfg.backend == "openai":
        from unimm.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg, model, response)
    raise ValueError(f"backend {cfg.backend!r} has no LLM")


def backoff_delay(cfg: GenerateConfig, n: int, retry_after: float | None, rng: random.Random) -> float:
    """Delay before the n-th retry (1-based): exponential, capped, jittered, never under Retry-After."""
    base = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (n - 1))
    delay = base * (0.5 + rng.random())  # jitter: spread retries of a burst apart
    return max(delay, retry_after or 0.0)


def deadline_error(cfg: GenerateConfig, deadline_s: float) -> TransientError:
    """The failure of a request whose deadline passed, naming the servers it waited for."""
    servers = ", ".join(cfg.base_urls) or f"the {cfg.backend} backend"
    return TransientError("timeout", f"request deadline of {deadline_s:g} s passed waiting for {servers}")


def is_transient(reason: str) -> bool:
    """A failure reason where the server, not the request, was the problem: worth re-sending."""
    return reason.startswith(TRANSIENT_REASONS_PREFIX)


def is_cacheable(entry: dict) -> bool:
    """Ok answers and permanent failures are kept; transient failures are re-sent next run."""
    return entry["status"] == "ok" or not is_transient(entry["reason"])


def reusable(entry: dict | None, retry_failures: bool) -> bool:
    """Whether a cached entry answers the request instead of sending it again."""
    return entry is not None and (entry["status"] == "ok" or not retry_failures) and is_cacheable(entry)


async def call_validated(
    backend: LLMBackend,
    req: Request,
    cfg: GenerateConfig,
    rng: random.Random,
    stats: Counter,
) -> dict:
    """Send one request until `req.parse` accepts the answer, its retries run out or its deadline
    (cfg.timeouts()) passes; returns the cache entry (status ok with the parsed fields, or failure
    with a reason code)."""
    transient = invalid = attempts = 0
    base = {"request_id": req.rid, **req.meta, "model": backend.model}
    loop = asyncio.get_running_loop()
    deadline_s = cfg.timeouts().deadline_s
    end = math.inf if deadline_s is None else loop.time() + deadline_s

    def failed(e: TransientError | PermanentError | OutputError) -> dict:
        return {**base, "status": "failure", "reason": e.reason, "detail": e.detail, "attempts": attempts}

    messages = req.messages
    if callable(messages):
        try:
            messages = await asyncio.to_thread(messages)
        except PermanentError as e:
            return failed(e)
    while True:
        attempts += 1
        # A new seed per invalid retry: a seeded backend would otherwise repeat the same output.
        seed = cfg.seed + invalid
        stats["requests_sent"] += 1
        left = end - loop.time()
        try:
            comp = await asyncio.wait_for(
                backend.complete(messages, seed), None if left == math.inf else left
            )
        except asyncio.TimeoutError:
            if loop.time() < end:  # not ours: the backend's own
                raise
            return failed(deadline_error(cfg, deadline_s or 0.0))
        except TransientError as e:
            if transient >= cfg.retries:
                return failed(e)
            delay = backoff_delay(cfg, transient + 1, e.retry_after, rng)
            if loop.time() + delay >= end:  # the deadline would pass while waiting
                return failed(e)
            transient += 1
            stats["retries"] += 1
            await asyncio.sleep(delay)
            continue
        except PermanentError as e:
            return failed(e)
        stats["prompt_tokens"] += comp.prompt_tokens
        stats["completion_tokens"] += comp.completion_tokens
        try:
            fields = req.parse(comp)
        except OutputError as e:
            if invalid >= cfg.invalid_retries or loop.time() >= end:
                return failed(e)
            invalid += 1
            stats["retries"] += 1
            continue
        return {
            **base,
            "status": "ok",
            **fields,
            "prompt_tokens": comp.prompt_tokens,
            "completion_tokens": comp.completion_tokens,
            "attempts": attempts,
        }


async def send_all(
    requests: Sequence[Request],
    cfg: GenerateConfig,
    cache_dir: Path,
    model: str,
    stats: Counter,
    *,
    response: ResponseSchema | None = None,
    label: str = "generate",
    progress: bool = False,
) -> tuple[dict[str, dict], dict[str, str | None]]:
    """Request id -> cache entry for every request, and the response format used per base URL.

    `stats` gains requests_sent, cache_hits (per request answered from the cache), retries and
    token counts. The backend is only built (a local model only loaded) when something is missing.
    """
    entries: dict[str, dict] = {}
    rng = random.Random(cfg.seed)
    with ResponseCache(cache_dir) as cache:
        pending: dict[str, list[Request]] = {}
        for req in requests:
            entry = cache.get(req.rid)
            if reusable(entry, cfg.retry_failures):
                stats["cache_hits"] += 1
                entries[req.rid] = entry  # type: ignore[assignment]
            else:
                # Identical inputs (same annotations on two images) are sent once.
                pending.setdefault(req.rid, []).append(req)
        if not pending:
            return entries, {}
        backend = make_backend(cfg, model, response)
        sem = asyncio.Semaphore(min(cfg.concurrency, backend.max_concurrency))
        bar = Progress(len(requests), len(requests) - sum(map(len, pending.values())), progress, label)

        async def one(group: list[Request]) -> None:
            async with sem:
                entry = await call_validated(backend, group[0], cfg, rng, stats)
            if is_cacheable(entry):
                # Durable before the request counts as done. One request at a time (the
                # in-process model, which holds the event loop while it decodes) has nothing to
                # group, and a group commit there would wait for the next decode: write it now.
                if backend.max_concurrency == 1:
                    cache.put(entry)
                else:
                    await cache.aput(entry)
            entries[group[0].rid] = entry
            bar.advance(len(group))

        try:
            with bar:
                await asyncio.gather(*(one(g) for g in pending.values()))
        finally:
            await backend.aclose()
        formats = getattr(backend, "formats", None)
        return entries, (formats() if callable(formats) else {})


class Progress:
    """A rich progress bar when asked for, else nothing."""

    def __init__(self, total: int, done: int, enabled: bool, label: str = "generate") -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task(label, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_sync(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    # Called from inside an event loop (an async orchestrator): run on a private loop in a thread.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
