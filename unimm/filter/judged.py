"""The filter step's work on one partition: the LLM judge (when on), then every rule filter."""

from __future__ import annotations

from pathlib import Path

from unimm.filter.config import FilterConfig
from unimm.filter.core import FilterResult, filter_chats
from unimm.generate import GenerateConfig
from unimm.grounding.judge import JudgeResult, judge_chats, judge_fingerprint
from unimm.schema import Chat, MergedImage


def judge_fingerprint_for(cfg: FilterConfig) -> str | None:
    """The judge prompt fingerprint when the judge is on (part of the filter step's key)."""
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
