"""Read merged records and write the stage's outputs under `work/generate/`."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from unimm.errors import InputError
from unimm.generate.runner import GenerateResult
from unimm.schema import MergedImage
from unimm.tables import chats_to_frame
from unimm.workdir import atomic_path, merged_dir, write_parquet_atomic

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


def merged_parts(work: Path) -> list[Path]:
    """`work/merged/part-*.parquet` in order; none is a MissingFilesError naming the stage to run."""
    parts = sorted(merged_dir(work).glob("part-*.parquet"))
    if not parts:
        raise InputError(merged_dir(work), f"no part-*.parquet files: run `unimm merge --work {work}` first")
    return parts


def read_merged(work: Path, limit: int | None = None) -> list[MergedImage]:
    """Validated MergedImage records, reading only as many parts as `limit` needs."""
    records: list[MergedImage] = []
    for part in merged_parts(work):
        df = pl.read_parquet(part)
        if limit is not None:
            df = df.head(limit - len(records))
        for i, row in enumerate(df.iter_rows(named=True)):
            try:
                records.append(MergedImage.model_validate(row))
            except ValidationError as e:
                err = e.errors()[0]
                field = ".".join(str(p) for p in err["loc"])
                raise InputError(part, err["msg"], record=i, field=field) from e
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
