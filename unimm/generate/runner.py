"""Run generation over merged records: prompts, request ids, chats and accounting (the cache, retries
and concurrency are unimm.generate.dispatch).

`generate_chats` is the synchronous entry the CLI and the build orchestrator call per partition.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.generate.backends import Completion
from unimm.generate.config import GenerateConfig
from unimm.generate.dispatch import Message, Request, run_sync, send_all
from unimm.generate.parse import parse_response
from unimm.generate.prompts import PromptSet, canonical_json, prompt_set_for, record_budget
from unimm.generate.render import render_record
from unimm.generate.template import TEMPLATE_VERSION, template_dialogue, template_fingerprint
from unimm.generate.vision import Missing, image_root_for, locate_pictures, vision_messages
from unimm.schema import Chat, DialogueResponse, GenerationFailure, GeneratorInfo, MergedImage
from unimm.structs import record_json


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


def request_id(
    model: str, fingerprint: str, rendered: str, cfg: GenerateConfig, image: dict[str, Any] | None = None
) -> str:
    """Content address of a request: model, prompt fingerprint, rendered input, sampling, seed,
    and (vision) the picture: its bytes' hash and how it is sent (`Picture.request_part`)."""
    doc: dict[str, Any] = {
        "model": model,
        "prompt": fingerprint,
        "input": rendered,
        "sampling": {"max_tokens": cfg.max_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p},
        "seed": cfg.seed,
    }
    if image is not None:  # absent for text requests: their ids (and caches) stay what they were
        doc["image"] = image
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def preferred_file(record: MergedImage) -> str | None:
    """The first of the record's files that has a file name."""
    return next((f.file_name for f in record.files if f.file_name), None)


def build_chat(record: MergedImage, dialogue: DialogueResponse, info: GeneratorInfo) -> Chat:
    """A Chat from a validated dialogue: alternating user/assistant turns, no image placeholder."""
    turns = [
        {"role": role, "content": text.strip()}
        for t in dialogue.turns
        for role, text in (("user", t.question), ("assistant", t.answer))
    ]
    # One validation of the whole tree: Turn models built one by one cost the template build
    # 0.1-0.2 CPU-s more a partition (~35 turns an image).
    return Chat.model_validate(
        {
            "id": record.image_key,
            "image_key": record.image_key,
            "image_file": preferred_file(record),
            "turns": turns,
            "sources": list(record.sources),
            "generator": info,
        }
    )


class _Job:
    __slots__ = ("index", "record", "messages", "rid")

    def __init__(
        self,
        index: int,
        record: MergedImage,
        messages: list[Message] | Callable[[], list[Message]],
        rid: str,
    ) -> None:
        self.index = index
        self.record = record
        self.messages = messages
        self.rid = rid


class _Run:
    """State of one run; all mutation happens on the event loop thread."""

    def __init__(
        self,
        records: list[MergedImage],
        cfg: GenerateConfig,
        cache_dir: Path,
        progress: bool,
        image_root: Path | None = None,
    ) -> None:
        self.records = records
        self.cfg = cfg
        self.image_root = image_root
        self.cache_dir = Path(cache_dir)
        self.progress = progress
        self.model = cfg.resolved_model()
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

    # -- the run -----------------------------------------------------------------------------
    def run_template(self) -> None:
        fp = template_fingerprint()
        prefix = canonical_json(["template", fp]).encode()
        for i, record in enumerate(self.records):
            # The record's own JSON (in field order: as stable as sorted keys).
            rid = hashlib.sha256(prefix + record_json(record)).hexdigest()
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
        pictures = locate_pictures(self.image_root, self.records) if self.image_root is not None else None
        for i, record in enumerate(self.records):
            rendered = render_record(record, budget)
            self.cuts.update({k: v for k, v in rendered.dropped.items() if v})
            user = prompts.user_message(rendered.text)
            if pictures is None:
                rid = request_id(self.model, prompts.fingerprint, user, self.cfg)
                jobs.append(_Job(i, record, [*prompts.prefix, {"role": "user", "content": user}], rid))
                continue
            pic = pictures[i]
            if isinstance(pic, Missing):  # nothing to show the model: recorded, never sent
                rid = request_id(self.model, prompts.fingerprint, user, self.cfg, {"missing": pic.reason})
                self.results[i] = self._failure(_Job(i, record, [], rid), pic.reason, pic.detail, 0)
                continue
            rid = request_id(self.model, prompts.fingerprint, user, self.cfg, pic.request_part(self.cfg))
            jobs.append(_Job(i, record, vision_messages(prompts.prefix, user, pic, self.cfg), rid))
        requests = [
            Request(job.rid, job.messages, _parse_dialogue, {"image_key": job.record.image_key})
            for job in jobs
        ]
        entries, formats = await send_all(
            requests, self.cfg, self.cache_dir, self.model, self.stats, progress=self.progress
        )
        for job in jobs:
            self.results[job.index] = self._resolve(job, entries[job.rid], prompts)
        return formats

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


def _parse_dialogue(comp: Completion) -> dict:
    """The cached fields of a valid dialogue answer."""
    return {"turns": parse_response(comp.text, comp.finish_reason).model_dump(mode="json")["turns"]}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def generate_chats(
    records: list[MergedImage],
    cfg: GenerateConfig,
    cache_dir: Path,
    progress: bool = False,
    log: Callable[[str], None] = _stderr,
    image_root: Path | None = None,
) -> GenerateResult:
    """One dialogue (or one recorded failure) per record, in input order.

    Finished requests are persisted under `cache_dir` as they arrive; a re-run with the same
    config sends only what is missing. `cfg.limit` keeps the first N records. An openai config
    without a model asks the server(s) for it first (with_served_model; `log` says which).
    With `cfg.vision` each record's picture is found under `image_root` and sent along
    (unimm.generate.vision); a record without one is a failure `image_missing`.
    """
    root = image_root_for(cfg, image_root)
    cfg = cfg.with_served_model(log)
    if cfg.limit is not None:
        records = records[: cfg.limit]
    run = _Run(list(records), cfg, cache_dir, progress, root)
    t0 = time.perf_counter()
    formats: dict[str, str | None] = {}
    if cfg.backend == "template":
        run.run_template()
    elif records:
        formats = run_sync(run.run_llm)
    wall = time.perf_counter() - t0
    chats = [r for r in run.results if isinstance(r, Chat)]
    failures = [r for r in run.results if isinstance(r, GenerationFailure)]
    return GenerateResult(chats=chats, failures=failures, summary=run.summary(wall, formats))
