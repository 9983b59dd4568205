"""merge, per partition: every source's annotations of the images in one range of the partition
hash -> one `MergedImage` row each, in `merged/part-<pid>.parquet` (the unit of every later
per-partition step). The ingest tables are sorted by that hash, so a partition reads only its
own row groups and partitions run side by side in bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from unimm.merge import MergeConfig, annotation_tables, merge_partition, partition_count, partition_id
from unimm.pipeline.step import Context, Scope, Step, StepResult

# Measured at full scale (19 partitions of ~9,500 images, 430k annotations each): ~0.5 GB peak
# per partition; the bytes of ingest tables a partition reads, times this, with the runtime.
MERGE_BASE_BYTES = 250 * 2**20
MERGE_BYTES_PER_TABLE_BYTE = 8


_counts: dict[tuple, int] = {}


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)  # partition_count names the missing table
    return (st.st_mtime_ns, st.st_size)


class MergeStep(Step):
    name = "merge"
    scope = Scope.PARTITION
    # generate plans its units (and --limit budgets) from the partitions merge wrote: it starts
    # its own chain instead of joining merge's.
    ends_chain: ClassVar[bool] = True

    def config(self, ctx: Context) -> MergeConfig:
        return ctx.cfg.merge.model_copy(update={"sources": ctx.cfg.merge.sources or ctx.cfg.sources})

    def units(self, ctx: Context) -> list[str]:
        cfg = self.config(ctx)
        # Asked for once per unit by the runner: count the images once per set of image tables.
        tables = [ctx.layout.ingest_images(s) for s in cfg.sources or []]
        stamp = (str(ctx.work), cfg.model_dump_json(), *((t, *_stat(t)) for t in tables))
        if stamp not in _counts:
            _counts[stamp] = partition_count(ctx.work, cfg)
        return [partition_id(p) for p in range(_counts[stamp])]

    def key(self, ctx: Context, unit: str) -> list[object]:
        return [self.config(ctx), len(self.units(ctx))]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.merged_part(unit), ctx.layout.merged_summary(unit)]

    def _table_bytes(self, ctx: Context) -> int:
        tables = [t for s in self.config(ctx).sources or [] for t in annotation_tables(ctx.layout, s)]
        return sum(t.stat().st_size for t in tables)

    def worth_processes(self, ctx: Context, units: list[str]) -> bool:
        from unimm.pipeline.steps.ingest import PROCESS_MIN_BYTES

        return len(units) > 1 and self._table_bytes(ctx) >= PROCESS_MIN_BYTES

    def memory(self, ctx: Context, unit: str) -> int:
        parts = len(self.units(ctx))
        return MERGE_BASE_BYTES + MERGE_BYTES_PER_TABLE_BYTE * self._table_bytes(ctx) // parts

    def process(self, ctx: Context, unit: str) -> StepResult:
        parts = len(self.units(ctx))
        s = merge_partition(ctx.work, self.config(ctx), int(unit), parts)
        dropped = s.images_total - s.images_kept
        return StepResult(
            input=s.images_total,
            output=s.images_kept,
            dropped={"merge_source_filter": dropped} if dropped else {},
            extra={"annotations": sum(s.annotations_in.values())},
        )
