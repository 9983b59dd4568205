"""The ingest table files (`work/ingest/<source>.parquet` and `.images.parquet`): written once by
ingest, read back one partition's hash range at a time by merge.

Constant columns: the annotation schema is the union of every source's fields, so many columns
of one source hold nothing (VG regions have no choices, names, synsets, attributes or rounds)
or one value (VG's `source` and `split`). A column whose every row holds the same value (null,
an empty list, or one scalar) is left out of the file and its value kept in the metadata;
`scan_ingest_table` puts it back, so readers see the whole schema. Writing VG's constant columns
cost 0.75 CPU-s, and decoding them back a third of merge's read of VG rows.

The metadata also marks the schema the file was written for: a table from another unimm version
is a clear error at merge instead of a missing or misread column later.

Row groups: merge reads one partition's hash range, and the row groups at its ends are read
whole. They are sized by the hash range they cover, not by rows: a quarter of a default
partition's images each. Fixed 65k-row groups made a VQAv2 partition (~50k rows of ten-answer
lists) decode up to 130k rows; VG (~600k rows a partition) keeps the largest groups.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from unimm.errors import UnimmError
from unimm.keys import IMAGES_PER_PARTITION, PARTITION_HASH
from unimm.workdir import atomic_path

GROUPS_PER_PARTITION = 4
ROW_GROUP_ROWS = (8_192, 65_536)  # bounds: small groups compress worse and cost per group
_META = "unimm.ingest"


def row_group_rows(df: pl.DataFrame) -> int:
    """Rows per row group of an ingest table (see GROUPS_PER_PARTITION)."""
    images = max(1, df[PARTITION_HASH].n_unique())
    rows = df.height * IMAGES_PER_PARTITION // (GROUPS_PER_PARTITION * images)
    return min(max(rows, ROW_GROUP_ROWS[0]), ROW_GROUP_ROWS[1])


def _schema_mark(schema: pl.Schema) -> str:
    return hashlib.sha256(repr(list(schema.items())).encode()).hexdigest()[:16]


def _constant_columns(df: pl.DataFrame) -> dict[str, Any]:
    """column -> its one value, for the columns whose rows all hold the same: None (all null),
    [] (lists, all empty) or a scalar. The hash is kept: merge filters on it. Found by
    expressions: the columns `conform` added are constants that a Series would first have to
    materialise (0.5 s for VG's empty lists)."""
    if not df.height:
        return {}
    nulls = df.select(pl.all().exclude(PARTITION_HASH).null_count()).row(0, named=True)
    out: dict[str, Any] = {c: None for c, n in nulls.items() if n == df.height}
    full = [c for c, n in nulls.items() if n == 0]
    lists = [c for c in full if isinstance(df.schema[c], pl.List)]
    if lists:
        longest = df.select(pl.col(lists).list.len().max()).row(0, named=True)
        out.update({c: [] for c in lists if not longest[c]})
    scalars = [c for c in full if not df.schema[c].is_nested()]
    if scalars:
        # first == last screens out most columns before every row is compared
        ends = df.select(pl.col(c).first() == pl.col(c).last() for c in scalars).row(0, named=True)
        same = [c for c in scalars if ends[c] and df.select((pl.col(c) == pl.col(c).first()).all()).item()]
        if same:
            out.update(df.select(pl.col(same).first()).row(0, named=True))
    return out


def write_ingest_table(df: pl.DataFrame, path: Path) -> None:
    """Write an ingest table (conformed to its schema; runs sorted by partition hash, see
    `base.annotations_frame`): sparse columns, the schema mark, and row groups whose hash
    statistics let each merge partition skip all but its own range."""
    constant = _constant_columns(df)
    meta = {_META: json.dumps({"schema": _schema_mark(df.schema), "constant": constant})}
    df = df.drop(*constant)
    rows = row_group_rows(df)
    with atomic_path(path) as tmp:
        # lz4: an intermediate table, read back once per partition, decodes 25% faster than zstd
        if rows < ROW_GROUP_ROWS[1]:
            # polars' writer slows down per group on lists of structs (VQAv2's answers in 13k-row
            # groups: 1.4 -> 4.4 CPU-s); pyarrow's does not (1.05). In the largest groups polars'
            # is the faster one (VG: 3.4 against 4.6 CPU-s).
            table = df.to_arrow()
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            pq.write_table(table, tmp, compression="lz4", row_group_size=rows)
        else:
            df.write_parquet(tmp, compression="lz4", statistics=True, row_group_size=rows, metadata=meta)


def _constants(path: Path, schema: pl.Schema, source: str | None) -> dict[str, Any]:
    raw = pl.read_parquet_metadata(path).get(_META)
    meta = json.loads(raw) if raw else {}
    if meta.get("schema") != _schema_mark(schema):
        again = f"unimm ingest --sources {source}" if source else "unimm ingest"
        raise UnimmError(
            f"{path} was written by another unimm version (its columns differ from this one's): "
            f"run `{again}` again"
        )
    return meta["constant"]


def check_ingest_table(path: Path, schema: pl.Schema, source: str | None = None) -> None:
    """An error naming the command to run again if `path` was written for another schema."""
    _constants(path, schema, source)


def scan_ingest_table(path: Path, schema: pl.Schema, source: str | None = None) -> pl.LazyFrame:
    """An ingest table with every column of `schema` (INGEST_ANNOTATION_SCHEMA or
    INGEST_IMAGE_SCHEMA), those left out of the file put back."""
    constant = _constants(path, schema, source)
    return pl.scan_parquet(path).select(
        pl.lit(constant[c], dtype=t).alias(c) if c in constant else pl.col(c) for c, t in schema.items()
    )


def read_ingest_table(path: Path, schema: pl.Schema) -> pl.DataFrame:
    """A whole ingest table (see scan_ingest_table)."""
    return scan_ingest_table(path, schema).collect()
