"""The whole filter stage on in-memory lists: filters -> dedup -> decontamination."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from unimm.decontam import DecontamConfig, DecontamReport, decontaminate
from unimm.dedup import DedupConfig, dedup_chats
from unimm.filter.config import FilterConfig
from unimm.filter.core import filter_chats
from unimm.filter.reasons import count_reasons
from unimm.schema import Chat, MergedImage, Reject


class FilterStageConfig(BaseModel):
    """Config of `unimm filter` (YAML sections `filter`, `dedup`, `decontam`)."""

    model_config = ConfigDict(extra="forbid")

    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    run_dedup: bool = True


class StageSummary(BaseModel):
    input: int
    kept: int
    rejected: int
    rejects_by_reason: dict[str, int]
    filter: dict[str, int]
    dedup: dict[str, int] | None
    decontam: DecontamReport | None
    grounding_scored: int = Field(
        description="Kept dialogues with a grounding score (the rest had nothing checkable)."
    )
    grounding_mean: float | None


class StageResult(NamedTuple):
    kept: list[Chat]
    rejects: list[Reject]
    summary: StageSummary


def run_filter_stage(
    chats: list[Chat], merged: dict[str, MergedImage], cfg: FilterStageConfig
) -> StageResult:
    """filter_chats, then dedup_chats (unless disabled), then decontaminate (when eval files are
    given); kept + rejects == input."""
    fr = filter_chats(chats, merged, cfg.filter)
    kept, rejects = fr.kept, list(fr.rejects)
    dd = None
    if cfg.run_dedup:
        dr = dedup_chats(kept, cfg.dedup)
        kept, dd = dr.kept, dr.counts
        rejects += dr.rejects
    report = None
    if cfg.decontam.eval_files:
        cr = decontaminate(kept, merged, cfg.decontam)
        kept, report = cr.kept, cr.report
        rejects += cr.rejects
    scores = [c.grounding_score for c in kept if c.grounding_score is not None]
    summary = StageSummary(
        input=len(chats),
        kept=len(kept),
        rejected=len(rejects),
        rejects_by_reason=count_reasons(rejects),
        filter=fr.counts,
        dedup=dd,
        decontam=report,
        grounding_scored=len(scores),
        grounding_mean=sum(scores) / len(scores) if scores else None,
    )
    return StageResult(kept, rejects, summary)
