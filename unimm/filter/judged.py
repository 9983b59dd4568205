"""The filter step's work on one partition: the LLM judge (when on), then every rule filter."""

from __future__ import annotations

from pathlib import Path

from unimm.filter.config import FilterConfig
from unimm.filter.core import FilterResult, cheap_reasons, filter_chats, needs_grounding
from unimm.generate import GenerateConfig
from unimm.grounding.judge import JudgeResult, judge_chats, judge_fingerprint
from unimm.schema import Chat, MergedImage


def judge_fingerprint_for(cfg: FilterConfig, generate: GenerateConfig | None = None) -> str | None:
    """The judge prompt fingerprint when the judge is on (part of the filter step's key), of the
    judge config as it runs (inheriting from `generate` when given: whether it sees the picture)."""
    if not cfg.judge:
        return None
    judge = cfg.judge_llm if generate is None else cfg.judge_llm.inherit(generate)
    return judge_fingerprint(judge)


def judge_sees(cfg: FilterConfig, generate: GenerateConfig) -> bool:
    """Whether the judge is on and is shown the picture (its own `vision`, else generation's)."""
    return cfg.judge and bool(cfg.judge_llm.inherit(generate).vision)


def judge_and_filter(
    chats: list[Chat],
    merged: dict[str, MergedImage],
    cfg: FilterConfig,
    generate: GenerateConfig,
    judge_cache: Path | None,
    *,
    progress: bool = False,
    image_root: Path | None = None,
) -> tuple[FilterResult, JudgeResult | None]:
    """filter_chats, preceded by the LLM judge when `cfg.judge` (its unset backend fields taken from
    `generate`, its answers cached in `judge_cache`, the pictures under `image_root` when it sees
    them) on the dialogues the grounding checks will see (`needs_grounding`); judged chats carry
    the judge fingerprint."""
    if not cfg.judge:
        return filter_chats(chats, merged, cfg), None
    if judge_cache is None:
        raise ValueError("filter.judge needs a judge cache folder")
    # The judge's calls cost GPU time: a dialogue the cheap checks reject anyway is not judged.
    cheap = cheap_reasons(chats, cfg)
    judged = judge_chats(
        [c for c, r in zip(chats, cheap, strict=True) if needs_grounding(r, cfg)],
        merged,
        cfg.judge_llm.inherit(generate),
        judge_cache,
        progress=progress,
        image_root=image_root,
    )
    fr = filter_chats(
        chats, merged, cfg, verdicts=judged.verdicts, judge_fingerprint=judged.fingerprint, cheap=cheap
    )
    return fr, judged
