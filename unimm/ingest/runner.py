"""Ingest one source: its official files -> its annotation and image tables, each written atomically.

The pipeline runner (`unimm.pipeline`) schedules sources as units of work (in parallel processes,
or Ray tasks, within a memory budget from `estimated_peak`); `run_ingest` is the library entry
that runs that same step for a list of sources.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from unimm.ingest.base import IngestResult, kind_counts
from unimm.ingest.registry import INGESTERS
from unimm.keys import IMAGES_PER_PARTITION, PARTITION_HASH
from unimm.pipeline.layout import Layout
from unimm.workdir import atomic_path

# Row groups of an ingest table: merge reads one partition's hash range, and the row groups at its
# ends are read whole. Sized by the hash range they cover, not by rows: a quarter of a default
# partition's images each. Fixed 65k-row groups made a VQAv2 partition (~50k rows of ten-answer
# lists) decode up to 130k rows; VG (~600k rows a partition) keeps the largest groups.
GROUPS_PER_PARTITION = 4
ROW_GROUP_ROWS = (8_192, 65_536)  # bounds: small groups compress worse and cost per group


def row_group_rows(df: pl.DataFrame) -> int:
    """Rows per row group of an ingest table (see GROUPS_PER_PARTITION)."""
    images = max(1, df[PARTITION_HASH].n_unique())
    rows = df.height * IMAGES_PER_PARTITION // (GROUPS_PER_PARTITION * images)
    return min(max(rows, ROW_GROUP_ROWS[0]), ROW_GROUP_ROWS[1])


def write_ingest_table(df: pl.DataFrame, path: Path) -> None:
    """Write an ingest table: runs sorted by partition hash (`base.annotations_frame`), in row
    groups whose hash statistics let each merge partition skip all but its own range."""
    rows = row_group_rows(df)
    with atomic_path(path) as tmp:
        # lz4: an intermediate table, read back once per partition, decodes 25% faster than zstd
        if rows < ROW_GROUP_ROWS[1]:
            # polars' writer slows down per group on lists of structs (VQAv2's answers in 13k-row
            # groups: 1.4 -> 4.4 CPU-s); pyarrow's does not (1.05). In the largest groups polars'
            # is the faster one (VG: 3.4 against 4.6 CPU-s).
            pq.write_table(df.to_arrow(), tmp, compression="lz4", row_group_size=rows)
        else:
            df.write_parquet(tmp, compression="lz4", statistics=True, row_group_size=rows)


def ingest_source(source: str, data_root: Path, table: Path, images: Path) -> IngestResult:
    """Read one source under `data_root` and write its two tables (InputError on bad input:
    nothing is written)."""
    t0 = time.perf_counter()
    tables = INGESTERS[source].read(Path(data_root))
    write_ingest_table(tables.annotations, table)
    write_ingest_table(tables.images, images)
    return IngestResult(
        source=source,
        files=tables.files,
        images=tables.images.height,
        annotations=kind_counts(tables.annotations),
        seconds=round(time.perf_counter() - t0, 3),
        table=str(table),
        images_table=str(images),
    )


def input_bytes(source: str, data_root: Path) -> int:
    """Bytes of the source's files present under `data_root`."""
    return sum((Path(data_root) / f.path).stat().st_size for f in INGESTERS[source]._present(Path(data_root)))


def estimated_peak(source: str, data_root: Path) -> int:
    """Peak RSS of ingesting one source: measured ~3x the JSON it decodes (VG full size: 0.8 GB ->
    2.4 GB) plus the runtime."""
    return 3 * input_bytes(source, data_root) + 250 * 2**20


def run_ingest(data_root: Path, work: Path, sources: list[str], jobs: int = 1) -> list[IngestResult]:
    """Ingest `sources` into `work/ingest/` with the pipeline's ingest step (cached per source;
    MissingFilesError before anything is read, InputError on bad input)."""
    from unimm.config import PipelineConfig
    from unimm.pipeline.runner import run_pipeline
    from unimm.sources import parse_sources

    cfg = PipelineConfig(sources=parse_sources(list(sources)), data_root=Path(data_root))
    cfg.executor.workers = jobs
    run_pipeline(cfg, Path(work), only="ingest", log=lambda _: None)
    layout = Layout(work)
    return [IngestResult.model_validate_json(layout.ingest_summary(s).read_text()) for s in cfg.sources]
