"""`unimm ingest`: official annotation files under --data-root -> work/ingest/<source>.parquet."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.commands.runstage import CONFIG, EXECUTOR, RAY_ADDRESS, SET, WORK, run_stage
from unimm.sources import SOURCE_FOLDERS, SOURCE_LIST


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        config: Path = CONFIG,
        data_root: Path = typer.Option(
            None,
            "--data-root",
            help=f"Folder holding one sub-folder per source ({SOURCE_FOLDERS}) with the "
            "official annotation files under their distributed names (default data/).",
        ),
        work: Path = WORK,
        sources: str | None = typer.Option(
            None,
            "--sources",
            help=f"Comma-separated sources to ingest ({SOURCE_LIST}). Default: the config's, "
            "else every source whose folder exists under the data root.",
        ),
        jobs: int = typer.Option(
            None, "--jobs", min=1, help="Sources read at once, one process each (default: cores)."
        ),
        memory_gb: float = typer.Option(
            None,
            "--memory-gb",
            min=0.5,
            help="Peak memory budget: a further source starts only while the estimated peaks "
            "(about 3x each source's JSON size) of those running fit (default: executor.memory_gb).",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress display; only the summary table."),
        set_: list[str] = SET,
        executor: str = EXECUTOR,
        ray_address: str = RAY_ADDRESS,
    ) -> None:
        """Read the official annotation files and write one annotation table and one image table per source.

        Every requested source is checked for missing files before anything is read (the error lists each
        file and the archive it comes from); each source's tables appear whole or not at all.
        """
        from unimm.errors import ConfigError
        from unimm.ingest.inputs import present_sources
        from unimm.pipeline.layout import Layout
        from unimm.sources import DEFAULT_DATA_ROOT

        if sources is None and config is None and not Layout(work).config.exists():
            # Nothing names the sources: every one whose folder is under the data root.
            root = data_root or Path(DEFAULT_DATA_ROOT)
            found = present_sources(root)
            if not found:
                raise ConfigError(
                    f"no source folders under {root} (expected one of {SOURCE_FOLDERS}); "
                    "run `unimm download` or pass --data-root"
                )
            sources = ",".join(found)
        run_stage(
            config=config,
            work=work,
            overrides={
                "data_root": str(data_root) if data_root else None,
                "sources": sources,
                "executor.memory_gb": memory_gb,
            },
            set_=set_,
            executor=executor,
            workers=jobs,
            ray_address=ray_address,
            progress=not quiet,
            only="ingest",
        )
