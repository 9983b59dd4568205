"""`unimm sample`: write a demo corpus (or a full-scale synthetic one) in the official layouts."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("sample")
    def sample(
        out: Path = typer.Option(
            ..., "--out", help="Data root to create (the layout `unimm ingest --data-root` reads)."
        ),
        seed: int = typer.Option(0, help="Random seed; the same seed gives the same bytes."),
        images: int = typer.Option(24, "--images", help="Number of demo pictures (demo corpus only)."),
        scale: str | None = typer.Option(
            None,
            help="Write the synthetic benchmark corpus instead: 'full' (real sizes) or a fraction like 0.05.",
        ),
        no_images: bool = typer.Option(
            False, "--no-images", help="Write annotation files only (required with --scale)."
        ),
        workers: int = typer.Option(2, help="Processes for --scale (one file per job)."),
    ) -> None:
        """Write the five sources' annotation files (and pictures) exactly as they are distributed.

        Without --scale: ~24 rendered pictures of coloured shapes whose captions, questions, boxes
        and regions are true of the pixels. With --scale: full-size synthetic files for benchmarks."""
        from unimm.sample import parse_scale, write_demo, write_full

        if scale is None:
            info = write_demo(out, seed=seed, images=images, with_images=not no_images)
        else:
            if not no_images:
                raise ConfigError(
                    "--scale writes annotation files only (their texts describe no picture); "
                    "add --no-images, or drop --scale for the demo corpus with pictures"
                )
            info = write_full(out, scale=parse_scale(scale), seed=seed, workers=max(1, workers))
        total = sum(info["records"].values())
        typer.echo(
            f"wrote {len(info['records'])} annotation files ({total:,} records) and "
            f"{info['jpeg_files']} images to {out}"
        )
