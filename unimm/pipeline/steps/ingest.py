"""ingest, per source (and per part of a source read apart, `<source>.<part>`): the official files
-> `ingest/<unit>.parquet` (+ `ingest/<source>.images.parquet` by the source's own unit)."""

from __future__ import annotations

from pathlib import Path

from unimm import __version__
from unimm.ingest.inputs import unit_bytes, unit_files
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.sources import source_units, split_unit
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
        from unimm.ingest.inputs import check_inputs

        check_inputs(ctx.cfg.data_root, ctx.cfg.sources)

    def units(self, ctx: Context) -> list[str]:
        return [u for s in ctx.cfg.sources for u in source_units(s)]

    def key(self, ctx: Context, unit: str) -> list[object]:
        from unimm.ingest.result import IngestResult
        from unimm.ingest.tablefile import table_mark

        root = ctx.cfg.data_root
        files = [root / f.path for f in unit_files(*split_unit(unit), root)]
        # The table schema and format, the partition hash and the summary's fields are part of
        # the key: a unimm that ingests more fields, writes another format, sorts by another hash
        # or reads other summaries must not reuse outputs written without them.
        return [
            __version__,
            table_mark(INGEST_ANNOTATION_SCHEMA),
            code_fingerprint("unimm.keys"),
            IngestResult.model_json_schema(),
            files_fingerprint(files),
        ]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        lay = ctx.layout
        images = [] if split_unit(unit)[1] else [lay.ingest_images(unit)]
        return [lay.ingest_table(unit), *images, lay.ingest_summary(unit)]

    def worth_processes(self, ctx: Context, units: list[str]) -> bool:
        return sum(unit_bytes(u, ctx.cfg.data_root) for u in units) >= PROCESS_MIN_BYTES

    def memory(self, ctx: Context, unit: str) -> int:
        # measured ~3x the JSON a unit decodes (VG full size: 0.8 GB -> 2.4 GB) plus the runtime
        return 3 * unit_bytes(unit, ctx.cfg.data_root) + 250 * 2**20

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.ingest import ingest_unit

        lay = ctx.layout
        res = ingest_unit(unit, ctx.cfg.data_root, lay)
        with atomic_path(lay.ingest_summary(unit)) as tmp:
            tmp.write_text(res.model_dump_json(indent=2) + "\n")
        return StepResult(input=res.total, output=res.total, extra={"images": res.images, **res.annotations})
