"""`unimm shards`, `unimm verify`, `unimm export`: WebDataset shards, their check, and exports."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import polars as pl
import typer

from unimm.errors import InputError
from unimm.filter.tables import rejects_to_frame
from unimm.shards import ShardConfig, export_llava, export_unimm_parquet, verify_shards, write_shards_result
from unimm.tables import frame_to_chats
from unimm.workdir import exclusive_work, write_parquet_atomic


class ExportFormat(str, Enum):
    llava = "llava"
    unimm_parquet = "unimm-parquet"


def register(app: typer.Typer) -> None:
    @app.command("shards")
    def shards_cmd(
        work: Path = typer.Option(Path("work"), help="Work directory (reads filter/kept.parquet)."),
        out: Path = typer.Option(..., help="Shard directory."),
        image_root: Path | None = typer.Option(
            None, help="Data root the chats' image_file paths are relative to."
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
            if image_root is not None and not image_root.is_dir():
                raise InputError(image_root, "image root is not a directory")
            chats = frame_to_chats(pl.read_parquet(src))
            extra: dict = {}
            summary = Path(work) / "filter" / "summary.json"
            if summary.is_file():
                extra["rejects_by_reason"] = json.loads(summary.read_text()).get("rejects_by_reason", {})
            cfg = ShardConfig(prefix=prefix, maxcount=maxcount, maxsize=maxsize)
            manifest, rejects = write_shards_result(chats, out, cfg, image_root, extra)
            write_parquet_atomic(rejects_to_frame(rejects), Path(work) / "shards" / "rejects.parquet")
        typer.echo(
            f"shards: {manifest.total_samples} samples in {len(manifest.shards)} shards "
            f"({manifest.total_bytes} bytes) -> {out}; {len(rejects)} rejected"
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
            ..., "--format", help="llava (instruction JSON) or unimm-parquet."
        ),
        out: Path = typer.Option(..., help="Output file."),
    ) -> None:
        """Export shards as LLaVA instruction JSON or the UniMM-Chat release Parquet layout."""
        n = export_llava(shards, out) if format is ExportFormat.llava else export_unimm_parquet(shards, out)
        typer.echo(f"export: {n} records -> {out}")
