"""The whole filter stage on in-memory lists: (LLM judge) -> filters -> dedup -> decontamination."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from unimm.decontam import DecontamConfig, DecontamReport, decontaminate
from unimm.dedup import DedupConfig, dedup_chats
from unimm.filter.config import FilterConfig
from unimm.filter.core import FilterResult, filter_chats
from unimm.filter.reasons import count_reasons
from unimm.generate import GenerateConfig
from unimm.grounding.judge import JudgeResult, judge_chats, judge_fingerprint
from unimm.schema import Chat, MergedImage, Reject


class FilterStageConfig(BaseModel):
    """Config of `unimm filter` (YAML sections `filter`, `dedup`, `decontam`, `generate`)."""

    model_config = ConfigDict(extra="forbid")

    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    generate: GenerateConfig = Field(
        default_factory=GenerateConfig,
        description="Backend settings the LLM judge inherits where `filter.judge_llm` leaves them unset.",
    )
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
    judge: dict[str, int] | None = Field(None, description="LLM judge accounting, when it ran.")


class StageResult(NamedTuple):
    kept: list[Chat]
    rejects: list[Reject]
    summary: StageSummary


def judge_fingerprint_for(cfg: FilterConfig) -> str | None:
    """The judge prompt fingerprint when the judge is on (part of the filter stage fingerprint)."""
    return judge_fingerprint(cfg.judge_llm) if cfg.judge else None


def judge_and_filter(
    chats: list[Chat],
    merged: dict[str, MergedImage],
    cfg: FilterConfig,
    generate: GenerateConfig,
    judge_cache: Path | None,
    *,
    progress: bool = False,
) -> tuple[FilterResult, JudgeResult | None]:
    """filter_chats, preceded by the LLM judge when `cfg.judge` (its unset backend fields taken from
    `generate`, its answers cached in `judge_cache`); judged chats carry the judge fingerprint."""
    if not cfg.judge:
        return filter_chats(chats, merged, cfg), None
    if judge_cache is None:
        raise ValueError("filter.judge needs a judge cache folder")
    judged = judge_chats(chats, merged, cfg.judge_llm.inherit(generate), judge_cache, progress=progress)
    fr = filter_chats(chats, merged, cfg, verdicts=judged.verdicts, judge_fingerprint=judged.fingerprint)
    return fr, judged


def run_filter_stage(
    chats: list[Chat],
    merged: dict[str, MergedImage],
    cfg: FilterStageConfig,
    *,
    judge_cache: Path | None = None,
    progress: bool = False,
) -> StageResult:
    """(judge), filter_chats, then dedup_chats (unless disabled), then decontaminate (when eval
    files are given); kept + rejects == input. The judge needs `judge_cache`."""
    fr, judged = judge_and_filter(chats, merged, cfg.filter, cfg.generate, judge_cache, progress=progress)
    kept, rejects = fr.kept, list(fr.rejects)
    dd = None
    if cfg.run_dedup:
        dr = dedup_chats(kept, cfg.dedup)
        kept, dd = dr.kept, dr.counts
        rejects += dr.rejects
    report = None
    if cfg.decontam.eval_files:
        coco_ids = {k: m.coco_id for k, m in merged.items() if m.coco_id is not None}
        cr = decontaminate(kept, coco_ids, cfg.decontam)
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
        judge=judged.counts() if judged else None,
    )
    return StageResult(kept, rejects, summary)
