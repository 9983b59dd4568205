"""filter, per partition: structure, leakage and echo checks of every dialogue, then (the LLM judge
and) the grounding checks against its image's merged annotations of those that pass them (of all
with `filter.ground_rejected`) -> kept dialogues + rejects with reasons."""

from __future__ import annotations

from pathlib import Path

from unimm.merge import load_merged
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.pipeline.steps.generate import chain_memory, pictures_key
from unimm.pipeline.tables import read_chats, write_chats


class FilterStep(Step):
    name = "filter"
    scope = Scope.PARTITION
    writes_rejects = True
    reads = "generate"

    def config(self, ctx: Context) -> object:
        return ctx.derived.filter_cfg

    def key(self, ctx: Context, unit: str) -> list[object]:
        from unimm.filter.judged import judge_sees

        d = ctx.derived
        # Editing the judge prompt re-judges (the judge's cache keeps old answers); the rules
        # live in code, so their source is in the key too; so are the pictures a seeing judge sees.
        key: list[object] = [d.filter_cfg, d.judge_fp, d.vocab_fp, d.rules_fp]
        if judge_sees(d.filter_cfg, ctx.cfg.generate):
            key.append(pictures_key(ctx, unit))
        return key

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.chats(self.name, unit)]

    def memory(self, ctx: Context, unit: str) -> int:
        return chain_memory(ctx, unit)  # a chain may start here when generation is cached

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.filter.judged import judge_and_filter

        lay = ctx.layout
        chats = read_chats(lay.chats(self.reads, unit))
        merged = load_merged([lay.merged_part(unit)], {c.image_key for c in chats})
        res, judged = judge_and_filter(
            chats,
            merged,
            ctx.derived.filter_cfg,
            ctx.cfg.generate,
            lay.judge_cache(unit),
            progress=ctx.progress,
            image_root=ctx.cfg.image_dir,
        )
        write_chats(res.kept, lay.chats(self.name, unit))
        return StepResult(
            input=len(chats),
            output=len(res.kept),
            rejects=list(res.rejects),
            extra=judged.counts() if judged else {},
        )
