"""Run generation over merged records: cache look-up, bounded concurrency, retries, accounting.

`generate_chats` is the synchronous entry the CLI and the build orchestrator call per partition.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.generate.backends import LLMBackend, PermanentError, TransientError
from unimm.generate.cache import ResponseCache
from unimm.generate.config import GenerateConfig
from unimm.generate.parse import OutputError, parse_response
from unimm.generate.prompts import PromptSet, canonical_json, prompt_set_for, record_budget
from unimm.generate.render import render_record
from unimm.generate.template import TEMPLATE_VERSION, template_dialogue, template_fingerprint
from unimm.schema import Chat, DialogueResponse, GenerationFailure, GeneratorInfo, MergedImage, Turn

# Failures worth re-sending on the next run: the server, not the request, was the problem.
TRANSIENT_REASONS_PREFIX = (
    "http_429",
    "http_5",
    "timeout",
    "connection_error",
    "empty_response",
    "bad_response",
)


class GenerateSummary(BaseModel):
    """Accounting of one run (written as work/generate/summary.json). Never holds the API key."""

    model_config = ConfigDict(extra="forbid")
    backend: str
    model: str
    prompt_version: str
    prompt_fingerprint: str
    records: int = 0
    chats: int = 0
    failures: int = 0
    requests_sent: int = Field(0, description="Calls made to the model, retries included.")
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    completion_tokens_per_s: float = 0.0
    failures_by_reason: dict[str, int] = Field(default_factory=dict)
    budget_cuts: dict[str, int] = Field(default_factory=dict, description="Items cut from prompts, per kind.")
    response_formats: dict[str, str | None] = Field(default_factory=dict)


class GenerateResult(BaseModel):
    """Chats and failures in input order, plus the run summary."""

    chats: list[Chat]
    failures: list[GenerationFailure]
    summary: GenerateSummary


def request_id(model: str, fingerprint: str, rendered: str, cfg: GenerateConfig) -> str:
    """Content address of a request: model, prompt fingerprint, rendered input, sampling, seed."""
    payload = canonical_json(
        {
            "model": model,
            "prompt": fingerprint,
            "input": rendered,
            "sampling": {"max_tokens": cfg.max_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p},
            "seed": cfg.seed,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def preferred_file(record: MergedImage) -> str | None:
    """The first of the record's files that has a file name."""
    return next((f.file_name for f in record.files if f.file_name), None)


def build_chat(record: MergedImage, dialogue: DialogueResponse, info: GeneratorInfo) -> Chat:
    """A Chat from a validated dialogue: alternating user/assistant turns, no image placeholder."""
    turns: list[Turn] = []
    for t in dialogue.turns:
        turns.append(Turn(role="user", content=t.question.strip()))
        turns.append(Turn(role="assistant", content=t.answer.strip()))
    return Chat(
        id=record.image_key,
        image_key=record.image_key,
        image_file=preferred_file(record),
        turns=turns,
        sources=list(record.sources),
        generator=info,
    )


def make_backend(cfg: GenerateConfig, model: str) -> LLMBackend:
    """The backend `cfg.backend` names (template needs none)."""
    if cfg.backend == "local":
        from unimm.generate.local import LocalBackend

        return LocalBackend(cfg, model)
    if cfg.backend == "openai":
        from unimm.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg, model)
    raise ValueError(f"backend {cfg.backend!r} has no LLM")


class _Job:
    __slots__ = ("index", "record", "messages", "rid")

    def __init__(self, index: int, record: MergedImage, messages: list[dict[str, str]], rid: str) -> None:
        self.index = index
        self.record = record
        self.messages = messages
        self.rid = rid


class _Run:
    """State of one run; all mutation happens on the event loop thread."""

    def __init__(
        self, records: list[MergedImage], cfg: GenerateConfig, cache_dir: Path, progress: bool
    ) -> None:
        self.records = records
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self.progress = progress
        self.model = cfg.resolved_model()
        self.rng = random.Random(cfg.seed)
        self.results: list[Chat | GenerationFailure | None] = [None] * len(records)
        self.reasons: Counter[str] = Counter()
        self.cuts: Counter[str] = Counter()
        self.stats = Counter()

    # -- per-request ------------------------------------------------------------------------
    def _info(self, rid: str, prompts: PromptSet) -> GeneratorInfo:
        return GeneratorInfo(
            backend=self.cfg.backend,
            model=self.model,
            prompt_version=f"{prompts.name}/{prompts.version}",
            prompt_fingerprint=prompts.fingerprint,
            request_id=rid,
        )

    def _failure(self, job: _Job, reason: str, detail: str, attempts: int) -> GenerationFailure:
        return GenerationFailure(
            image_key=job.record.image_key,
            request_id=job.rid,
            backend=self.cfg.backend,
            model=self.model,
            reason=reason,
            detail=detail,
            attempts=attempts,
        )

    def _backoff(self, n: int, retry_after: float | None) -> float:
        base = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (n - 1))
        delay = base * (0.5 + self.rng.random())  # jitter: spread retries of a burst apart
        return max(delay, retry_after or 0.0)

    async def _call(self, backend: LLMBackend, job: _Job) -> dict:
        """Send one request until it yields a valid dialogue or its retries run out; the cache
        entry it returns is what gets persisted."""
        transient = invalid = attempts = 0
        while True:
            attempts += 1
            # A new seed per invalid retry: a seeded backend would otherwise repeat the same output.
            seed = self.cfg.seed + invalid
            self.stats["requests_sent"] += 1
            try:
                comp = await backend.complete(job.messages, seed)
            except TransientError as e:
                if transient >= self.cfg.retries:
                    return self._entry_failure(job, e.reason, e.detail, attempts)
                transient += 1
                self.stats["retries"] += 1
                await asyncio.sleep(self._backoff(transient, e.retry_after))
                continue
            except PermanentError as e:
                return self._entry_failure(job, e.reason, e.detail, attempts)
            self.stats["prompt_tokens"] += comp.prompt_tokens
            self.stats["completion_tokens"] += comp.completion_tokens
            try:
                dialogue = parse_response(comp.text, comp.finish_reason)
            except OutputError as e:
                if invalid >= self.cfg.invalid_retries:
                    return self._entry_failure(job, e.reason, e.detail, attempts)
                invalid += 1
                self.stats["retries"] += 1
                continue
            return {
                "request_id": job.rid,
                "status": "ok",
                "image_key": job.record.image_key,
                "model": self.model,
                "turns": dialogue.model_dump(mode="json")["turns"],
                "prompt_tokens": comp.prompt_tokens,
                "completion_tokens": comp.completion_tokens,
                "attempts": attempts,
            }

    def _entry_failure(self, job: _Job, reason: str, detail: str, attempts: int) -> dict:
        return {
            "request_id": job.rid,
            "status": "failure",
            "image_key": job.record.image_key,
            "model": self.model,
            "reason": reason,
            "detail": detail,
            "attempts": attempts,
        }

    def _resolve(self, job: _Job, entry: dict, prompts: PromptSet) -> Chat | GenerationFailure:
        if entry["status"] == "ok":
            try:
                dialogue = DialogueResponse.model_validate({"turns": entry["turns"]})
                return build_chat(job.record, dialogue, self._info(job.rid, prompts))
            except ValidationError as e:
                return self._failure(
                    job, "invalid_record", str(e.errors()[0]["msg"]), entry.get("attempts", 0)
                )
        return self._failure(job, entry["reason"], entry.get("detail", ""), entry.get("attempts", 0))

    def _cacheable(self, entry: dict) -> bool:
        return entry["status"] == "ok" or not entry["reason"].startswith(TRANSIENT_REASONS_PREFIX)

    # -- the run -----------------------------------------------------------------------------
    def run_template(self) -> None:
        fp = template_fingerprint()
        for i, record in enumerate(self.records):
            rid = hashlib.sha256(
                canonical_json(["template", fp, record.model_dump(mode="json")]).encode()
            ).hexdigest()
            info = GeneratorInfo(
                backend="template",
                model="template",
                prompt_version=TEMPLATE_VERSION,
                prompt_fingerprint=fp,
                request_id=rid,
            )
            job = _Job(i, record, [], rid)
            dialogue = template_dialogue(record, self.cfg.template_max_turns)
            if dialogue is None:
                self.results[i] = self._failure(
                    job, "no_content", "no caption, answered question or boxed region", 0
                )
                continue
            try:
                self.results[i] = build_chat(record, dialogue, info)
            except ValidationError as e:
                self.results[i] = self._failure(job, "invalid_record", str(e.errors()[0]["msg"]), 0)

    async def run_llm(self) -> dict[str, str | None]:
        prompts = prompt_set_for(self.cfg)
        budget = record_budget(self.cfg, prompts)
        jobs: list[_Job] = []
        for i, record in enumerate(self.records):
            rendered = render_record(record, budget)
            self.cuts.update({k: v for k, v in rendered.dropped.items() if v})
            user = prompts.user_message(rendered.text)
            rid = request_id(self.model, prompts.fingerprint, user, self.cfg)
            jobs.append(_Job(i, record, [*prompts.prefix, {"role": "user", "content": user}], rid))

        with ResponseCache(self.cache_dir) as cache:
            pending: dict[str, list[_Job]] = {}
            for job in jobs:
                entry = cache.get(job.rid)
                if (
                    entry is not None
                    and (entry["status"] == "ok" or not self.cfg.retry_failures)
                    and self._cacheable(entry)
                ):
                    self.stats["cache_hits"] += 1
                    self.results[job.index] = self._resolve(job, entry, prompts)
                else:
                    # Identical inputs (same annotations on two images) are sent once.
                    pending.setdefault(job.rid, []).append(job)
            if not pending:
                return {}
            backend = make_backend(self.cfg, self.model)
            sem = asyncio.Semaphore(min(self.cfg.concurrency, backend.max_concurrency))
            bar = _Progress(len(jobs), len(jobs) - sum(map(len, pending.values())), self.progress)

            async def one(group: list[_Job]) -> None:
                async with sem:
                    entry = await self._call(backend, group[0])
                if self._cacheable(entry):
                    cache.put(entry)  # durable before the request counts as done
                for job in group:
                    self.results[job.index] = self._resolve(job, entry, prompts)
                bar.advance(len(group))

            try:
                with bar:
                    await asyncio.gather(*(one(g) for g in pending.values()))
            finally:
                await backend.aclose()
            formats = getattr(backend, "formats", None)
            return formats() if callable(formats) else {}

    def summary(self, wall_s: float, formats: dict[str, str | None]) -> GenerateSummary:
        chats = [r for r in self.results if isinstance(r, Chat)]
        failures = [r for r in self.results if isinstance(r, GenerationFailure)]
        if self.cfg.backend == "template":
            version, fp = TEMPLATE_VERSION, template_fingerprint()
        else:
            p = prompt_set_for(self.cfg)
            version, fp = f"{p.name}/{p.version}", p.fingerprint
        return GenerateSummary(
            backend=self.cfg.backend,
            model=self.model,
            prompt_version=version,
            prompt_fingerprint=fp,
            records=len(self.records),
            chats=len(chats),
            failures=len(failures),
            requests_sent=self.stats["requests_sent"],
            cache_hits=self.stats["cache_hits"],
            retries=self.stats["retries"],
            prompt_tokens=self.stats["prompt_tokens"],
            completion_tokens=self.stats["completion_tokens"],
            wall_s=round(wall_s, 3),
            completion_tokens_per_s=round(self.stats["completion_tokens"] / wall_s, 2) if wall_s > 0 else 0.0,
            failures_by_reason=dict(sorted(Counter(f.reason for f in failures).items())),
            budget_cuts=dict(sorted(self.cuts.items())),
            response_formats=formats,
        )


class _Progress:
    """A rich progress bar when asked for, else nothing."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("generate", total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _run_sync(coro_factory: Any) -> Any:
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


def generate_chats(
    records: list[MergedImage], cfg: GenerateConfig, cache_dir: Path, progress: bool = False
) -> GenerateResult:
    """One dialogue (or one recorded failure) per record, in input order.

    Finished requests are persisted under `cache_dir` as they arrive; a re-run with the same
    config sends only what is missing. `cfg.limit` keeps the first N records.
    """
    if cfg.limit is not None:
        records = records[: cfg.limit]
    run = _Run(list(records), cfg, cache_dir, progress)
    t0 = time.perf_counter()
    formats: dict[str, str | None] = {}
    if cfg.backend == "template":
        run.run_template()
    elif records:
        formats = _run_sync(run.run_llm)
    wall = time.perf_counter() - t0
    chats = [r for r in run.results if isinstance(r, Chat)]
    failures = [r for r in run.results if isinstance(r, GenerationFailure)]
    return GenerateResult(chats=chats, failures=failures, summary=run.summary(wall, formats))
