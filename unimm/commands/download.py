"""`unimm download`: fetch and unpack the official annotation (and optionally image) archives."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.sources import DEFAULT_DATA_ROOT, SOURCE_LIST


def register(app: typer.Typer) -> None:
    @app.command("download")
    def download_cmd(
        sources: str = typer.Option(SOURCE_LIST, help="Comma-separated sources to fetch."),
        data_root: Path = typer.Option(Path(DEFAULT_DATA_ROOT), help="Where each source gets its folder."),
        images: bool = typer.Option(False, "--images", help="Also fetch the image archives (tens of GB)."),
        mirror: str | None = typer.Option(
            None,
            envvar="UNIMM_MIRROR",
            help="Fetch <URL>/<source>/<archive file> instead of the official hosts.",
        ),
        keep_archives: bool = typer.Option(
            False, "--keep-archives", help="Keep the archives after unpacking."
        ),
    ) -> None:
        """Download the official archives with resume and size/sha256 checks, then unpack them safely.

        Archives whose files are all present are skipped; an interrupted download resumes on the next run."""
        from unimm.download import download, select_archives
        from unimm.sources import parse_sources

        archives = select_archives(parse_sources(sources), images=images)
        outcomes = download(archives, data_root, mirror=mirror, keep_archives=keep_archives)
        fetched = sum(o.status == "unpacked" for o in outcomes)
        total = sum(o.downloaded for o in outcomes)
        typer.echo(
            f"{fetched} archive(s) downloaded and unpacked ({total:,} bytes), "
            f"{len(outcomes) - fetched} already present, under {data_root}"
        )
