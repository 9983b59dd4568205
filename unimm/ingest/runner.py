"""Ingest one unit: a source's official files -> its annotation and image tables, each written
atomically; a source with `parts` is several units (`sources.source_units`).

The pipeline runner (`unimm.pipeline`) schedules the units (in parallel processes, or Ray tasks,
within the memory budget the ingest step estimates); `run_ingest` is the library entry that runs
that same step for a list of sources.
"""

from __future__ import annotations

import time
from pathlib import Path

from unimm.ingest.base import kind_counts
from unimm.ingest.registry import INGESTERS
from unimm.ingest.result import IngestResult
from unimm.ingest.tablefile import write_ingest_table
from unimm.pipeline.layout import Layout
from unimm.sources import source_units, split_unit


def ingest_unit(unit: str, data_root: Path, layout: Layout) -> IngestResult:
    """Read one unit of ingest under `data_root` (a source, or `<source>.<part>`, see
    `SourceSpec.parts`) and write its tables under `layout` (InputError on bad input: nothing is
    written)."""
    t0 = time.perf_counter()
    source, part = split_unit(unit)
    ingester = INGESTERS[source]
    tables = ingester.read_part(Path(data_root), part) if part else ingester.read(Path(data_root))
    write_ingest_table(tables.annotations, layout.ingest_table(unit))
    if tables.images is not None:
        write_ingest_table(tables.images, layout.ingest_images(unit))
    return IngestResult(
        source=source,
        files=tables.files,
        images=tables.images.height if tables.images is not None else 0,
        annotations=kind_counts(tables.annotations),
        seconds=round(time.perf_counter() - t0, 3),
        tables=[str(layout.ingest_table(unit))],
        images_table=str(layout.ingest_images(unit)) if tables.images is not None else None,
    )


def run_ingest(data_root: Path, work: Path, sources: list[str], jobs: int = 1) -> list[IngestResult]:
    """Ingest `sources` into `work/ingest/` with the pipeline's ingest step (cached per unit;
    MissingFilesError before anything is read, InputError on bad input); one result per source."""
    from unimm.config import PipelineConfig
    from unimm.pipeline.runner import run_pipeline
    from unimm.sources import parse_sources

    cfg = PipelineConfig(sources=parse_sources(list(sources)), data_root=Path(data_root))
    cfg.executor.workers = jobs
    run_pipeline(cfg, Path(work), only="ingest", log=lambda _: None)
    layout = Layout(work)
    return [
        IngestResult.combine(
            [IngestResult.model_validate_json(layout.ingest_summary(u).read_text()) for u in source_units(s)]
        )
        for s in cfg.sources
    ]
