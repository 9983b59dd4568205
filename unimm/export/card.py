"""The dataset card of an export: the folder it describes, its data files and declared columns."""

from __future__ import annotations

from pathlib import Path

from unimm.card import CARD_NAME, WRITTEN_BY, Feature, write_card
from unimm.export.hf import chat_features
from unimm.export.muffin_tsv import COLUMNS as MUFFIN_COLUMNS
from unimm.export.output import ExportResult
from unimm.export.unimm_parquet import release_features
from unimm.shards.manifest import read_manifest


def _layout(res: ExportResult) -> tuple[Path, list[str] | None, list[Feature] | None]:
    """(folder the card goes in, data file globs relative to it, declared features)."""
    if res.format == "llava":
        return res.out.parent, [res.out.name], None
    if res.format == "unimm-parquet":
        return res.out.parent, [res.out.name], release_features()._to_yaml_list()
    if res.format == "muffin-tsv":
        return res.out, ["*.tsv"], [{"name": n, "dtype": t} for n, t in MUFFIN_COLUMNS]
    if res.format == "hf":
        return res.out, None, chat_features()._to_yaml_list()
    raise ValueError(f"no card layout for export format {res.format!r}")


def write_export_card(res: ExportResult, shard_dir: Path) -> Path:
    """Write the card of an export beside (or inside) what it wrote; returns the card's path.

    A file export lands in a folder that may hold other things: a README.md that unimm did not
    write is left alone and the card goes to `<out stem>.README.md` instead."""
    folder, data_files, features = _layout(res)
    name = CARD_NAME
    existing = folder / CARD_NAME
    if existing.is_file() and WRITTEN_BY not in existing.read_text(encoding="utf-8", errors="replace"):
        name = f"{res.out.stem}.{CARD_NAME}"
    return write_card(
        folder,
        read_manifest(shard_dir),
        fmt=res.format,
        data_files=data_files,
        features=features,
        num_rows=res.records,
        name=name,
    )
