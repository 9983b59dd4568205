"""`unimm ingest`: official annotation files under --data-root -> work/ingest/<source>.parquet."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from unimm.errors import ConfigError
from unimm.ingest import IngestResult, present_sources, run_ingest
from unimm.sources import DEFAULT_DATA_ROOT, parse_sources
from unimm.workdir import DEFAULT_WORK, exclusive_work

_COLUMNS = ("caption", "qa", "region", "object", "rationale")


def summary_table(results: list[IngestResult]) -> Table:
    """One row per source: files read, images, rows per kind, seconds."""
    table = Table(title="ingest")
    table.add_column("source")
    for col in ("files", "images", "captions", "qa", "regions", "objects", "rationales", "seconds"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.source,
            str(len(r.files)),
            f"{r.images:,}",
            *(f"{r.annotations.get(k, 0):,}" for k in _COLUMNS),
            f"{r.seconds:.1f}",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        data_root: Path = typer.Option(
            Path(DEFAULT_DATA_ROOT),
            "--data-root",
            help="Folder holding one sub-folder per source (coco/, vqav2/, okvqa/, aokvqa/, vg/) with the "
            "official annotation files under their distributed names.",
        ),
        work: Path = typer.Option(
            DEFAULT_WORK,
            "--work",
            help="Work folder; tables are written to WORK/ingest/<source>.parquet and "
            "WORK/ingest/<source>.images.parquet.",
        ),
        sources: str | None = typer.Option(
            None,
            "--sources",
            help="Comma-separated sources to ingest (coco,vqav2,okvqa,aokvqa,vg). Default: every source whose "
            "folder exists under the data root.",
        ),
        jobs: int = typer.Option(
            2,
            "--jobs",
            min=1,
            help="Sources read in parallel, one process each, within --memory-gb "
            "(full-size VG alone peaks near 2.5 GB).",
        ),
        memory_gb: float = typer.Option(
            4.0,
            "--memory-gb",
            min=0.5,
            help="Peak memory budget for parallel jobs: a further source starts only while the estimated peaks "
            "(about 3x each source's JSON size) of those running fit.",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress display; only the summary table."),
    ) -> None:
        """Read the official annotation files and write one annotation table and one image table per source.

        Every requested source is checked for missing files before anything is read (the error lists each file and the archive it comes from); the outputs appear only if every source succeeds.
        """
        if sources is None:
            names = present_sources(data_root)
            if not names:
                raise ConfigError(
                    f"no source folders under {data_root} (expected one of coco/, vqav2/, okvqa/, aokvqa/, vg/); "
                    "run `unimm download` or pass --data-root"
                )
        else:
            names = parse_sources(sources)
            if not names:
                raise ConfigError("--sources names no source")
        with exclusive_work(work):
            results = run_ingest(
                data_root, work, names, jobs=jobs, progress=not quiet, memory_budget=int(memory_gb * 2**30)
            )
        Console().print(summary_table(results))
