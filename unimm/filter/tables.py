"""Reject rows as Parquet (`rejects.parquet`): id, image_key, stage, reasons, chat (nested Chat)."""

from __future__ import annotations

import polars as pl

from unimm.schema import Reject
from unimm.tables import CHAT_SCHEMA

REJECT_SCHEMA = pl.Schema(
    {
        "id": pl.Utf8,
        "image_key": pl.Utf8,
        "stage": pl.Utf8,
        "reasons": pl.List(pl.Utf8),
        "chat": pl.Struct(CHAT_SCHEMA),
    }
)


def rejects_to_frame(rejects: list[Reject]) -> pl.DataFrame:
    """Rejects -> REJECT_SCHEMA frame (empty list gives an empty frame)."""
    return pl.DataFrame([r.model_dump() for r in rejects], schema=REJECT_SCHEMA)


def frame_to_rejects(df: pl.DataFrame) -> list[Reject]:
    """REJECT_SCHEMA frame -> validated Reject objects."""
    return [Reject.model_validate(row) for row in df.select(list(REJECT_SCHEMA)).iter_rows(named=True)]
