"""The LLM judge: rates each assistant turn of a dialogue against its image's annotations.

It runs on generation's backends and machinery (unimm.generate.dispatch: the content-addressed
response cache, retries with backoff, constrained decoding with response-format detection, output
validation), with its own versioned prompt set `prompts/judge/<version>/`: `system.md`,
`user.md` (slots `{annotations}` and `{dialogue}`), `examples.json` (`{input, dialogue, output}`)
and the `JudgeResponse` schema. The judge sees the answers numbered A1, A2, ...; its verdicts are
mapped back to indices in `Chat.turns`. A dialogue the judge gave no valid answer for is recorded
in `JudgeResult.failures` and simply not judged. With `vision` (a VLM judge) it sees the picture
too (unimm.generate.vision), with the prompt set `prompts/judge_vision/<version>/`.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from unimm.errors import ConfigError
from unimm.filter.config import JudgeConfig
from unimm.generate.backends import Completion, ResponseSchema
from unimm.generate.config import GenerateConfig
from unimm.generate.dispatch import Message, Request, run_sync, send_all
from unimm.generate.parse import OutputError, parse_json, validate_as
from unimm.generate.prompts import (
    PromptFiles,
    folder_key,
    prompts_root,
    read_prompt_folder,
)
from unimm.generate.render import estimate_tokens, render_record
from unimm.generate.runner import request_id
from unimm.generate.vision import Missing, Picture, image_root_for, locate_pictures, vision_messages
from unimm.placeholder import remove_placeholders
from unimm.schema import (
    Chat,
    DialogueResponse,
    JudgeResponse,
    JudgeVerdict,
    MergedImage,
    Turn,
)

SCHEMA_NAME = "judge_response"
# Room kept free in a local model's context beyond prompt and answer (chat-template markers).
CONTEXT_SLACK = 64


class JudgeExample(BaseModel):
    """One few-shot example: a record, a dialogue about it, and the verdicts written for it."""

    model_config = ConfigDict(extra="forbid")
    input: MergedImage
    dialogue: DialogueResponse
    output: JudgeResponse


def response_schema() -> ResponseSchema:
    """The JSON the judge must answer (JudgeResponse)."""
    return ResponseSchema(SCHEMA_NAME, JudgeResponse.model_json_schema())


def dialogue_turns(dialogue: DialogueResponse) -> list[Turn]:
    """A few-shot dialogue as alternating chat turns."""
    return [
        Turn(role=role, content=text)
        for t in dialogue.turns
        for role, text in (("user", t.question), ("assistant", t.answer))
    ]


def render_dialogue(turns: Sequence[Turn]) -> tuple[str, list[int]]:
    """The dialogue as the judge reads it (`Q1:`/`A1:` lines) and, per answer number - 1, the
    index of that assistant turn in `turns`."""
    lines: list[str] = []
    answers: list[int] = []
    for i, t in enumerate(turns):
        text = " ".join(remove_placeholders(t.content).split())
        if t.role == "assistant":
            answers.append(i)
            lines.append(f"A{len(answers)}: {text}")
        else:
            lines.append(f"Q{len(answers) + 1}: {text}")
    return "\n".join(lines), answers


@dataclass(frozen=True)
class JudgePrompts(PromptFiles):
    """The judge's prompt set: examples are `JudgeExample`s, the slots `{annotations}` and
    `{dialogue}`; fingerprinted like generation's."""

    def user_message(self, annotations: str, dialogue: str) -> str:
        return self.fill(annotations=annotations, dialogue=dialogue)

    def example_user(self, example: BaseModel) -> str:
        ex: JudgeExample = example  # type: ignore[assignment]
        dialogue, _ = render_dialogue(dialogue_turns(ex.dialogue))
        return self.user_message(render_record(ex.input, None).text, dialogue)


def load_judge_prompts(cfg: JudgeConfig) -> JudgePrompts:
    """The judge prompt set `cfg` uses (the vision set when the judge sees the picture; reloaded
    when one of its files changes)."""
    root = prompts_root(cfg.prompts_dir)
    name, version = cfg.prompt_folder()
    return _cached_load(str(root), name, version, folder_key(root / name / version))


@functools.lru_cache(maxsize=8)
def _cached_load(root: str, name: str, version: str, _key: tuple) -> JudgePrompts:
    system, user, examples = read_prompt_folder(
        Path(root), name, version, JudgeExample, slots=("{annotations}", "{dialogue}")
    )
    return JudgePrompts(name, version, system, user, examples, response_schema().schema)


def judge_fingerprint(cfg: JudgeConfig) -> str:
    """Hash of the judge prompt set `cfg` names; stored on judged chats and in the filter stage's
    fingerprint, so editing the prompt re-judges."""
    return load_judge_prompts(cfg).fingerprint


@dataclass
class JudgeResult:
    """Verdicts per judged chat, failures per chat the judge gave no valid answer for, accounting."""

    verdicts: dict[str, list[JudgeVerdict]]
    failures: dict[str, str]
    fingerprint: str
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    failures_by_reason: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """The figures a stage marker records."""
        return {
            "judged": len(self.verdicts),
            "judge_failures": len(self.failures),
            "judge_requests_sent": self.requests_sent,
            "judge_cache_hits": self.cache_hits,
        }


def map_verdicts(response: JudgeResponse, answers: list[int]) -> list[JudgeVerdict]:
    """Answer-numbered verdicts -> verdicts on `Chat.turns` indices, ordered by turn; numbers with
    no such answer are dropped, and a repeated number keeps its first verdict."""
    out: dict[int, JudgeVerdict] = {}
    for v in response.verdicts:
        if v.answer <= len(answers) and answers[v.answer - 1] not in out:
            turn = answers[v.answer - 1]
            out[turn] = JudgeVerdict(turn=turn, verdict=v.verdict, reason=v.reason.strip())
    return [out[t] for t in sorted(out)]


def _parser(n_answers: int) -> Callable[[Completion], dict]:
    """Validates one answer of the judge for a dialogue with `n_answers` answers."""

    def parse(comp: Completion) -> dict:
        resp = validate_as(JudgeResponse, parse_json(comp.text, comp.finish_reason))
        if not any(v.answer <= n_answers for v in resp.verdicts):
            raise OutputError(
                "no_verdicts", f"verdicts only for answers the dialogue lacks (it has {n_answers})"
            )
        return {"verdicts": resp.model_dump(mode="json")["verdicts"]}

    return parse


def _budget(llm: GenerateConfig, prompts: JudgePrompts) -> int:
    """Tokens the annotations and dialogue may share; the in-process model must fit its context."""
    if llm.backend != "local":
        return llm.token_budget
    room = llm.n_ctx - prompts.prefix_tokens - llm.max_tokens - CONTEXT_SLACK
    if room < CONTEXT_SLACK:
        raise ConfigError(
            f"judge n_ctx {llm.n_ctx} leaves no room for a dialogue: the prompt prefix takes "
            f"~{prompts.prefix_tokens} tokens and max_tokens is {llm.max_tokens}"
        )
    return room


def judge_chats(
    chats: list[Chat],
    merged: dict[str, MergedImage],
    cfg: JudgeConfig,
    cache_dir: Path,
    *,
    progress: bool = False,
    image_root: Path | None = None,
) -> JudgeResult:
    """Rate every assistant turn of every chat against its image's rendered annotations (and,
    with `cfg.vision`, the picture itself, found under `image_root`).

    `cfg` should already inherit from the pipeline's generate config (`cfg.inherit(generate)`).
    Answers are cached under `cache_dir` like generation's: a re-run sends only what is missing.
    A chat without annotations or picture, too long for the context, or without a valid answer
    after the retries is recorded in `failures` (reason code), never raised.
    """
    t0 = time.perf_counter()
    llm = cfg.llm_config()
    model = llm.resolved_model()
    prompts = load_judge_prompts(cfg)
    room = _budget(llm, prompts)
    root = image_root_for(llm, image_root)
    pictures: dict[str, Picture | Missing] = {}
    if root is not None:
        records = [merged[k] for k in dict.fromkeys(c.image_key for c in chats) if k in merged]
        pictures = dict(zip((r.image_key for r in records), locate_pictures(root, records), strict=True))
    failures: dict[str, str] = {}
    jobs: list[tuple[Chat, list[int], Request]] = []
    for chat in chats:
        record = merged.get(chat.image_key)
        dialogue, answers = render_dialogue(chat.turns)
        if record is None or not answers:
            failures[chat.id] = "no_annotations" if record is None else "no_assistant_turns"
            continue
        # The annotations get what the dialogue leaves; the renderer always keeps one caption.
        budget = min(llm.token_budget, room - estimate_tokens(dialogue))
        if budget < CONTEXT_SLACK:
            failures[chat.id] = "dialogue_too_long"
            continue
        user = prompts.user_message(render_record(record, budget).text, dialogue)
        messages: list[Message] | Callable[[], list[Message]]
        if root is None:
            rid = request_id(model, prompts.fingerprint, user, llm)
            messages = [*prompts.prefix, {"role": "user", "content": user}]
        else:
            pic = pictures[chat.image_key]
            if isinstance(pic, Missing):
                failures[chat.id] = pic.reason
                continue
            rid = request_id(model, prompts.fingerprint, user, llm, pic.request_part(llm))
            messages = vision_messages(prompts.prefix, user, pic, llm)
        meta = {"chat_id": chat.id, "image_key": chat.image_key}
        jobs.append((chat, answers, Request(rid, messages, _parser(len(answers)), meta)))

    stats: Counter = Counter()
    entries: dict[str, dict] = {}
    if jobs:
        entries, _ = run_sync(
            lambda: send_all(
                [j[2] for j in jobs],
                llm,
                cache_dir,
                model,
                stats,
                response=response_schema(),
                label="judge",
                progress=progress,
            )
        )
    verdicts: dict[str, list[JudgeVerdict]] = {}
    for chat, answers, req in jobs:
        entry = entries[req.rid]
        if entry["status"] != "ok":
            failures[chat.id] = entry["reason"]
            continue
        try:
            verdicts[chat.id] = map_verdicts(
                JudgeResponse.model_validate({"verdicts": entry["verdicts"]}), answers
            )
        except ValidationError:
            failures[chat.id] = "invalid_record"  # a cache line edited or written by another version
    return JudgeResult(
        verdicts=verdicts,
        failures=failures,
        fingerprint=prompts.fingerprint,
        requests_sent=stats["requests_sent"],
        cache_hits=stats["cache_hits"],
        retries=stats["retries"],
        completion_tokens=stats["completion_tokens"],
        wall_s=round(time.perf_counter() - t0, 3),
        failures_by_reason=dict(sorted(Counter(failures.values()).items())),
    )


__all__ = [
    "JudgeConfig",
    "JudgePrompts",
    "JudgeResult",
    "judge_chats",
    "judge_fingerprint",
    "load_judge_prompts",
    "map_verdicts",
    "render_dialogue",
]
