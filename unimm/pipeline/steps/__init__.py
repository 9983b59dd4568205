"""The pipeline's steps, in order. Each module holds one step (see unimm.pipeline.step).

A step module imports its stage's code inside the methods that run it: every process imports
all steps to plan, and a worker then imports only what its own step runs."""

from __future__ import annotations

from unimm.pipeline.step import Step
from unimm.pipeline.steps.decontaminate import DecontaminateStep
from unimm.pipeline.steps.dedup import DedupJoinStep, DedupSignStep, DedupStep
from unimm.pipeline.steps.filter import FilterStep
from unimm.pipeline.steps.generate import GenerateStep
from unimm.pipeline.steps.ingest import IngestStep
from unimm.pipeline.steps.merge import MergeStep
from unimm.pipeline.steps.report import ReportStep
from unimm.pipeline.steps.shards import ShardsStep

PIPELINE: list[Step] = [
    IngestStep(),
    MergeStep(),
    GenerateStep(),
    FilterStep(),
    DedupSignStep(),
    DedupJoinStep(),
    DedupStep(),
    DecontaminateStep(),
    ShardsStep(),
    ReportStep(),
]
BY_NAME: dict[str, Step] = {s.name: s for s in PIPELINE}

# What each command runs: `unimm filter` is the whole cleaning of the dialogues, `unimm shards`
# writes them and the report.
STAGES: dict[str, list[str]] = {
    "ingest": ["ingest"],
    "merge": ["merge"],
    "generate": ["generate"],
    "filter": ["filter", "dedup_sign", "dedup_join", "dedup", "decontaminate"],
    "shards": ["shards", "report"],
}
