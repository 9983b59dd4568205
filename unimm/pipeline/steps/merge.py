"""merge, corpus-wide: every source's annotations of one image -> one `MergedImage` row, written in
partitions by a stable hash of the image key (the unit of every later per-partition step)."""

from __future__ import annotations

from pathlib import Path

from unimm.merge import MergeConfig, merge
from unimm.pipeline.step import Context, Scope, Step, StepResult


class MergeStep(Step):
    name = "merge"
    scope = Scope.CORPUS

    def config(self, ctx: Context) -> MergeConfig:
        return ctx.cfg.merge.model_copy(update={"sources": ctx.cfg.merge.sources or ctx.cfg.sources})

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.merged_summary]

    def process(self, ctx: Context, unit: str) -> StepResult:
        s = merge(ctx.work, self.config(ctx))
        dropped = s.images_total - s.images_kept
        return StepResult(
            input=s.images_total,
            output=s.images_kept,
            dropped={"merge_source_filter": dropped} if dropped else {},
            extra={"partitions": s.partitions, "annotations": sum(s.annotations_in.values())},
        )
