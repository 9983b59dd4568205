"""filter_chats: structure, boilerplate/leakage and grounding filters over an in-memory list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from unimm import grounding
from unimm.filter.boilerplate import boilerplate_reasons_batch
from unimm.filter.config import FilterConfig
from unimm.filter.reasons import count_reasons
from unimm.filter.structure import structure_reasons
from unimm.schema import Chat, GroundingReport, JudgeVerdict, MergedImage, Reject


@dataclass
class FilterResult:
    """kept (with grounding_score set) + rejects == input; counts = rejected dialogues per reason code
    plus `input`, `kept`, `rejected`."""

    kept: list[Chat]
    rejects: list[Reject]
    counts: dict[str, int]


def cheap_reasons(chats: Sequence[Chat], cfg: FilterConfig) -> list[list[str]]:
    """Per chat, the reasons of the structure and boilerplate checks: a pass over the turns' text,
    no annotations (the pattern checks over every turn at once)."""
    boiler = boilerplate_reasons_batch(chats, cfg)
    return [structure_reasons(c, cfg) + b for c, b in zip(chats, boiler, strict=True)]


def needs_grounding(cheap: list[str], cfg: FilterConfig) -> bool:
    """Whether the grounding checks (and the LLM judge) see a dialogue with these cheap reasons:
    it passes the cheap checks, or `cfg.ground_rejected` asks for every reason of every reject."""
    return cfg.ground_rejected or not cheap


def chat_reasons(
    chat: Chat,
    merged: MergedImage | None,
    cfg: FilterConfig,
    verdicts: list[JudgeVerdict] | None = None,
    judge_fingerprint: str | None = None,
    cheap: list[str] | None = None,
) -> tuple[list[str], GroundingReport | None]:
    """The reasons that reject one dialogue, and its grounding report (None when the cheap checks
    already reject it and `cfg.ground_rejected` is off: grounding is not run). `cheap`: its cheap
    reasons when already known."""
    reasons = cheap if cheap is not None else cheap_reasons([chat], cfg)[0]
    if not needs_grounding(reasons, cfg):
        return reasons, None
    g = grounding.ground_chat(chat, merged, cfg, verdicts, judge_fingerprint=judge_fingerprint)
    return reasons + g.reasons, g.report


def filter_chats(
    chats: list[Chat],
    merged: dict[str, MergedImage],
    cfg: FilterConfig | None = None,
    verdicts: Mapping[str, list[JudgeVerdict]] | None = None,
    judge_fingerprint: str | None = None,
    cheap: list[list[str]] | None = None,
) -> FilterResult:
    """Split `chats` into kept and rejected. `merged` maps image_key -> MergedImage; a chat whose
    image has no merged record is still filtered but not grounded (score None), and so is one the
    cheap checks reject (unless `cfg.ground_rejected`). `verdicts` maps
    chat id -> the LLM judge's verdicts, folded into grounding when given; `judge_fingerprint`
    (the judge prompt's) is recorded on every judged chat's report. `cheap`: the chats'
    `cheap_reasons` when already computed."""
    cfg = cfg or FilterConfig()
    verdicts = verdicts or {}
    cheap = cheap if cheap is not None else cheap_reasons(chats, cfg)
    kept: list[Chat] = []
    rejects: list[Reject] = []
    for chat, chat_cheap in zip(chats, cheap, strict=True):
        judged = verdicts.get(chat.id)
        fp = judge_fingerprint if judged is not None else None
        reasons, report = chat_reasons(chat, merged.get(chat.image_key), cfg, judged, fp, chat_cheap)
        score = report.score if report is not None else None
        scored = chat.model_copy(update={"grounding_score": score, "grounding": report})
        if reasons:
            rejects.append(
                Reject(id=chat.id, image_key=chat.image_key, stage="filter", reasons=reasons, chat=scored)
            )
        else:
            kept.append(scored)
    counts = {"input": len(chats), "kept": len(kept), "rejected": len(rejects), **count_reasons(rejects)}
    return FilterResult(kept, rejects, counts)
