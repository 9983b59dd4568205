"""`unimm shards`, `unimm verify`, `unimm export`: WebDataset shards, their check, and exports."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import polars as pl
import typer

from unimm.errors import ConfigError, InputError, MissingStageOutputError
from unimm.filter.reasons import count_reasons
from unimm.filter.tables import rejects_to_frame
from unimm.merge import image_files, merged_parts
from unimm.schema import Chat
from unimm.shards import ShardConfig, verify_shards, write_shards_result
from unimm.tables import frame_to_chats
from unimm.workdir import exclusive_work, write_parquet_atomic


class ExportFormat(str, Enum):
    llava = "llava"
    unimm_parquet = "unimm-parquet"
    muffin_tsv = "muffin-tsv"
    hf = "hf"


def _known_files(work: Path, chats: list[Chat]) -> dict[str, list[str]]:
    """image key -> every file name its sources know, from the merged partitions when present
    (without them only each chat's own image_file is tried)."""
    try:
        parts = merged_parts(work)
    except MissingStageOutputError:
        return {}
    return image_files(parts, {c.image_key for c in chats})


def register(app: typer.Typer) -> None:
    @app.command("shards")
    def shards_cmd(
        work: Path = typer.Option(Path("work"), help="Work directory (reads filter/kept.parquet)."),
        out: Path = typer.Option(..., help="Shard directory."),
        image_root: Path | None = typer.Option(
            None, help="Data root the chats' image_file paths are relative to."
        ),
        no_images: bool = typer.Option(
            False, "--no-images", help="Write shards without images (JSON only); the manifest says so."
        ),
        prefix: str = typer.Option("unimm", help="Shard name prefix."),
        maxcount: int = typer.Option(10000, help="Samples per shard at most."),
        maxsize: int = typer.Option(1 << 30, help="Bytes per shard at most."),
    ) -> None:
        """Write kept chats as <prefix>-%06d.tar WebDataset shards + manifest.json."""
        with exclusive_work(work):
            src = Path(work) / "filter" / "kept.parquet"
            if not src.is_file():
                raise InputError(src, "not found (run `unimm filter` first)")
            if image_root is None and not no_images:
                raise ConfigError(
                    "no --image-root: the shards would hold no images; pass --image-root (the folder "
                    "the chats' image files are relative to) or --no-images for JSON-only shards"
                )
            if image_root is not None and no_images:
                raise ConfigError("--image-root and --no-images contradict each other: pass one")
            if image_root is not None and not image_root.is_dir():
                raise InputError(image_root, "image root is not a directory")
            chats = frame_to_chats(pl.read_parquet(src))
            files = _known_files(Path(work), chats) if image_root is not None else None
            extra: dict = {}
            summary = Path(work) / "filter" / "summary.json"
            if summary.is_file():
                extra["rejects_by_reason"] = json.loads(summary.read_text()).get("rejects_by_reason", {})
            cfg = ShardConfig(prefix=prefix, maxcount=maxcount, maxsize=maxsize)
            manifest, rejects = write_shards_result(chats, out, cfg, image_root, extra, files)
            write_parquet_atomic(rejects_to_frame(rejects), Path(work) / "shards" / "rejects.parquet")
        kinds = [e for e in manifest.extensions if e != "json"]
        held = f"with {'/'.join(kinds)} images" if kinds else "JSON only, no images"
        by_reason = ", ".join(f"{k} x{v}" for k, v in count_reasons(rejects).items())
        typer.echo(
            f"shards: {manifest.total_samples} samples in {len(manifest.shards)} shards "
            f"({manifest.total_bytes} bytes, {held}) -> {out}; {len(rejects)} rejected"
            + (f" ({by_reason})" if by_reason else "")
        )

    @app.command("verify")
    def verify_cmd(
        shard_dir: Path = typer.Argument(..., help="Directory with shards + manifest.json."),
    ) -> None:
        """Check shards against manifest.json (bytes, sha256, samples, JSON, keys, images); exit 2 on mismatch."""
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
