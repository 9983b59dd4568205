"""`unimm sample`: write a demo corpus in the official layouts."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("sample")
    def sample(
        out: Path = typer.Option(
            ..., "--out", help="Data root to create (the layout `unimm ingest --data-root` reads)."
        ),
        seed: int = typer.Option(0, help="Random seed; the same seed gives the same bytes."),
        images: int = typer.Option(
            24,
            "--images",
            help="Number of demo pictures (VisDial adds one for each of its own val and test splits).",
        ),
        no_images: bool = typer.Option(False, "--no-images", help="Write annotation files only."),
    ) -> None:
        """Write every source's annotation files (and pictures) exactly as they are distributed:
        ~24 rendered pictures of coloured shapes whose captions, questions, dialogues, boxes and
        regions are true of the pixels."""
        from unimm.sample import write_demo

        info = write_demo(out, seed=seed, images=images, with_images=not no_images)
        total = sum(info["records"].values())
        typer.echo(
            f"wrote {len(info['records'])} annotation files ({total:,} records) and "
            f"{info['jpeg_files']} images to {out}"
        )
