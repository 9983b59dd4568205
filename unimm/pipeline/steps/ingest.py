"""ingest, per source: the official files -> `ingest/<source>.parquet` + `.images.parquet`."""

from __future__ import annotations

from pathlib import Path

from unimm import __version__
from unimm.ingest import INGESTERS, check_inputs, ingest_source
from unimm.ingest.runner import estimated_peak, input_bytes
from unimm.ingest.tablefile import table_mark
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.sources import SOURCE_SPECS
from unimm.stagecache import code_fingerprint, files_fingerprint
from unimm.tables import INGEST_ANNOTATION_SCHEMA
from unimm.workdir import atomic_path

# below this much JSON, starting worker processes costs more than it saves
PROCESS_MIN_BYTES = 32 * 2**20


class IngestStep(Step):
    name = "ingest"
    scope = Scope.SOURCE
    uneven_units = True  # sources range from ~80 MB (COCO captions) to ~0.8 GB (VG) of JSON

    def check(self, ctx: Context) -> None:
        """Every file of every source, before anything is read."""
        check_inputs(ctx.cfg.data_root, ctx.cfg.sources)

    def key(self, ctx: Context, unit: str) -> list[object]:
        root = ctx.cfg.data_root
        files = [root / f.path for f in SOURCE_SPECS[unit].files() if (root / f.path).exists()]
        # The table schema and format and the partition hash are part of the key: a unimm that
        # ingests more fields, writes another format or sorts by another hash, must not reuse
        # tables written without them.
        return [
            __version__,
            table_mark(INGEST_ANNOTATION_SCHEMA),
            code_fingerprint("unimm.keys"),
            files_fingerprint(files),
        ]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        lay = ctx.layout
        return [lay.ingest_table(unit), lay.ingest_images(unit), lay.ingest_summary(unit)]

    def worth_processes(self, ctx: Context, units: list[str]) -> bool:
        return sum(input_bytes(u, ctx.cfg.data_root) for u in units) >= PROCESS_MIN_BYTES

    def memory(self, ctx: Context, unit: str) -> int:
        return estimated_peak(unit, ctx.cfg.data_root) if unit in INGESTERS else 0

    def process(self, ctx: Context, unit: str) -> StepResult:
        lay = ctx.layout
        res = ingest_source(unit, ctx.cfg.data_root, lay.ingest_table(unit), lay.ingest_images(unit))
        with atomic_path(lay.ingest_summary(unit)) as tmp:
            tmp.write_text(res.model_dump_json(indent=2) + "\n")
        return StepResult(input=res.total, output=res.total, extra={"images": res.images, **res.annotations})
