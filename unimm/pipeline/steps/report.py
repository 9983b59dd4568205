"""report, corpus-wide: the build's counts per step and rejections by reason ->
`work/report/summary.json` (what `unimm build` prints; `unimm stats` reports on the shards)."""

from __future__ import annotations

import json
from pathlib import Path

from unimm.pipeline.counts import rejected_by_reason
from unimm.pipeline.step import Context, Scope, Step, StepResult, step_totals
from unimm.workdir import atomic_path


class ReportStep(Step):
    name = "report"
    scope = Scope.CORPUS

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.report]

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.pipeline.steps import PIPELINE

        steps = step_totals(ctx, [s for s in PIPELINE if s.name != self.name])
        shipped = steps["shards"].output
        doc = {
            "out": str(ctx.cfg.out),
            "dialogues": shipped,
            "rejected_by_reason": rejected_by_reason(steps),
            "steps": {k: v.model_dump() for k, v in steps.items()},
        }
        with atomic_path(ctx.layout.report) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
        return StepResult(input=shipped, output=shipped)
