"""`unimm shards`, `unimm verify`, `unimm export`: WebDataset shards, their check, and exports."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from unimm.commands.runstage import CONFIG, PROGRESS, SET, WORK, run_stage
from unimm.errors import ConfigError


class ExportFormat(str, Enum):
    llava = "llava"
    unimm_parquet = "unimm-parquet"
    muffin_tsv = "muffin-tsv"
    hf = "hf"


def register(app: typer.Typer) -> None:
    @app.command("shards")
    def shards_cmd(
        config: Path = CONFIG,
        work: Path = WORK,
        out: Path = typer.Option(None, help="Shard directory (default: the config's, shards/)."),
        image_root: Path | None = typer.Option(
            None, help="Folder the chats' image files are relative to (default: the data root)."
        ),
        no_images: bool = typer.Option(
            False, "--no-images", help="Write shards without images (JSON only); the manifest says so."
        ),
        prefix: str = typer.Option(None, help="Shard name prefix (default unimm)."),
        maxcount: int = typer.Option(None, help="Samples per shard at most (default 10000)."),
        maxsize: int = typer.Option(None, help="Bytes per shard at most (default 1 GiB)."),
        set_: list[str] = SET,
        progress: bool = PROGRESS,
    ) -> None:
        """Write the dialogues that passed `unimm filter` as <prefix>-%06d.tar WebDataset shards +
        manifest.json + dataset card, and the build report (WORK/report/summary.json)."""
        if image_root is not None and no_images:
            raise ConfigError("--image-root and --no-images contradict each other: pass one")
        run_stage(
            config=config,
            work=work,
            overrides={
                "out": str(out) if out else None,
                "image_root": str(image_root) if image_root else None,
                "no_images": True if no_images else None,
                "shards.prefix": prefix,
                "shards.maxcount": maxcount,
                "shards.maxsize": maxsize,
            },
            set_=set_,
            executor=None,
            workers=None,
            ray_address=None,
            progress=progress,
            only="shards",
        )

    @app.command("verify")
    def verify_cmd(
        shard_dir: Path = typer.Argument(..., help="Directory with shards + manifest.json."),
    ) -> None:
        """Check shards against manifest.json (bytes, sha256, samples, JSON, keys, images); exit 2 on mismatch."""
        from unimm.shards import verify_shards

        rep = verify_shards(shard_dir)
        typer.echo(f"ok: {rep.shards} shards, {rep.samples} samples ({rep.images} images), {rep.bytes} bytes")

    @app.command("export")
    def export_cmd(
        shards: Path = typer.Option(..., help="Shard directory."),
        format: ExportFormat = typer.Option(
            ...,
            "--format",
            help="llava (JSON + image folder), unimm-parquet (the UniMM-Chat release layout), "
            "muffin-tsv (Muffin's TSV folder) or hf (datasets save_to_disk folder).",
        ),
        out: Path = typer.Option(
            ...,
            help="Output: a JSON file (llava), a Parquet file (unimm-parquet), a folder (muffin-tsv, hf).",
        ),
        images: Path | None = typer.Option(
            None, help="llava only: the image folder (LLaVA's --image_folder); default <out stem>_images/."
        ),
    ) -> None:
        """Export shards in the layout a consumer reads unchanged (see `unimm.export`)."""
        # imported here: the exports pull in pyarrow and datasets, which every other command can skip
        from unimm.export import export_hf, export_llava, export_muffin_tsv, export_unimm_parquet
        from unimm.export.card import write_export_card

        if images is not None and format is not ExportFormat.llava:
            raise ConfigError(f"--images is for --format llava only, not {format.value}")
        if format is ExportFormat.llava:
            res = export_llava(shards, out, images)
        elif format is ExportFormat.unimm_parquet:
            res = export_unimm_parquet(shards, out)
        elif format is ExportFormat.muffin_tsv:
            res = export_muffin_tsv(shards, out)
        else:
            res = export_hf(shards, out)
        card = write_export_card(res, shards)
        extra = f" + {res.images} images -> {res.images_dir}" if res.images_dir is not None else ""
        typer.echo(f"export: {res.records} records -> {res.out}{extra}; dataset card {card}")
