"""Read merged records and write the stage's outputs under `work/generate/`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from unimm.generate.runner import GenerateResult
from unimm.merge import merged_parts, read_partition
from unimm.schema import MergedImage
from unimm.tables import chats_to_frame
from unimm.workdir import atomic_path, write_parquet_atomic

FAILURE_SCHEMA = pl.Schema(
    {
        "image_key": pl.Utf8,
        "request_id": pl.Utf8,
        "backend": pl.Utf8,
        "model": pl.Utf8,
        "reason": pl.Utf8,
        "detail": pl.Utf8,
        "attempts": pl.Int32,
    }
)


def generate_dir(work: Path) -> Path:
    return Path(work) / "generate"


def read_merged(work: Path, limit: int | None = None) -> list[MergedImage]:
    """Validated MergedImage records, reading only as many parts as `limit` needs."""
    records: list[MergedImage] = []
    for part in merged_parts(work):
        records += read_partition(part, n_rows=None if limit is None else limit - len(records))
        if limit is not None and len(records) >= limit:
            break
    return records


def write_outputs(result: GenerateResult, out_dir: Path) -> dict[str, Path]:
    """chats.parquet, failures.parquet and summary.json, each atomically."""
    out_dir = Path(out_dir)
    chats = write_parquet_atomic(chats_to_frame(result.chats), out_dir / "chats.parquet")
    failures_df = pl.DataFrame([f.model_dump() for f in result.failures], schema=FAILURE_SCHEMA)
    failures = write_parquet_atomic(failures_df, out_dir / "failures.parquet")
    summary = out_dir / "summary.json"
    with atomic_path(summary) as tmp:
        tmp.write_text(json.dumps(result.summary.model_dump(mode="json"), indent=2) + "\n")
    return {"chats": chats, "failures": failures, "summary": summary}
