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

Reading one partition: merge reads one hash range. The table is a few runs sorted by hash (one
per file or kind of annotation) and the metadata holds each run's hash at every row group's
length of rows (`runs`), so a range is one slice of rows per run that polars reads without
touching the other row groups (the groups at a slice's ends are read whole). No parquet
statistics: they cost time on every column for the one they would be read for.

Row groups are sized by the hash range they cover, not by rows: a quarter of a default
partition's images each. Fixed 65k-row groups made a VQAv2 partition (~50k rows of ten-answer
lists) decode up to 130k rows; VG (~600k rows a partition) keeps the largest groups.

Uncompressed: the table is written once and read back once per partition, on the same machine;
lz4 cost 0.5 CPU-s on VG's write alone.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from unimm.errors import UnimmError
from unimm.keys import IMAGES_PER_PARTITION, PARTITION_HASH
from unimm.workdir import atomic_path

GROUPS_PER_PARTITION = 4
ROW_GROUP_ROWS = (8_192, 65_536)  # bounds: each group costs a little to find and decode
_META = "unimm.ingest"
_FORMAT = 2  # 2: uncompressed, hash index in the metadata instead of parquet statistics
# columns of few distinct values (an image's key repeats on each of its annotations)
_DICTIONARY = ("image_key", "source", "split", "kind", "answer", "question_type", "answer_type", "file_name")


def row_group_rows(df: pl.DataFrame) -> int:
    """Rows per row group of an ingest table (see GROUPS_PER_PARTITION)."""
    images = max(1, df[PARTITION_HASH].n_unique())
    rows = df.height * IMAGES_PER_PARTITION // (GROUPS_PER_PARTITION * images)
    return min(max(rows, ROW_GROUP_ROWS[0]), ROW_GROUP_ROWS[1])


def table_mark(schema: pl.Schema) -> str:
    """What a table must have been written for to be read by this unimm: its schema and this
    file format (a part of the ingest step's cache key, so that a new format re-ingests)."""
    return hashlib.sha256(repr((_FORMAT, list(schema.items()))).encode()).hexdigest()[:16]


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


def _runs(hashes: pl.Series, rows: int) -> list[dict[str, Any]]:
    """The sorted runs of a table (an ingester concatenates one per file or kind, each sorted by
    hash): where each starts, its length, and its hash at every `rows`-th row."""
    descents = (hashes.diff() < 0).arg_true().to_list()
    bounds = [0, *descents, hashes.len()]
    return [
        {"start": a, "length": b - a, "index": hashes.slice(a, b - a).gather_every(rows).to_list()}
        for a, b in zip(bounds, bounds[1:], strict=False)
        if b > a
    ]


def write_ingest_table(df: pl.DataFrame, path: Path) -> None:
    """Write an ingest table (runs sorted by partition hash, see `base.annotations_frame`,
    conformed to its schema): sparse columns, the schema mark, and the hash index by which
    each merge partition reads its own rows only."""
    constant = _constant_columns(df)
    rows = row_group_rows(df)
    mark = {
        "schema": table_mark(df.schema),
        "constant": constant,
        "rows": rows,
        "runs": _runs(df[PARTITION_HASH], rows),
    }
    kept = df.drop(*constant)
    with atomic_path(path) as tmp:
        if not any(_struct_list(t) for t in kept.schema.values()):
            # polars' writer, from the frame as it is: VG's regions 0.76 against pyarrow's 1.17
            # CPU-s, and merge reads its files' ranges faster (VG's regions: 46 against 83 ms)
            kept.write_parquet(
                tmp,
                compression="uncompressed",
                statistics=False,
                row_group_size=rows,
                metadata={_META: json.dumps(mark)},
            )
        else:
            _write_with_pyarrow(kept, tmp, rows, mark)


def _struct_list(dtype: pl.DataType) -> bool:
    """Whether a column nests structs in a list (VQAv2's ten answers)."""
    return isinstance(dtype, pl.List) and (isinstance(dtype.inner, pl.Struct) or _struct_list(dtype.inner))


def _write_with_pyarrow(df: pl.DataFrame, path: Path, rows: int, mark: dict[str, Any]) -> None:
    """pyarrow's writer, for lists of structs: polars' took 4.6 against 0.75 CPU-s on VQAv2's
    answers. Dictionaries only where values repeat: elsewhere they cost time and save little."""
    import pyarrow.parquet as pq  # only here: merge reads these tables without pyarrow (0.14 s of imports)

    table = df.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META: json.dumps(mark)})
    pq.write_table(
        table,
        path,
        compression="none",
        row_group_size=rows,
        use_dictionary=[c for c in _DICTIONARY if c in table.column_names],
        write_statistics=False,
    )


def _rows_of(run: dict[str, Any], rows: int, hashes: tuple[int, int]) -> tuple[int, int]:
    """(offset, length) of the rows of a run that can hold hashes [lo, hi), from its hashes at
    every `rows`-th row: the rows before a sampled hash below `lo` hold hashes below it, the
    rows from a sampled hash at or above `hi` on hold hashes at or above it."""
    index, lo, hi = run["index"], *hashes
    first = max(bisect.bisect_left(index, lo) - 1, 0)
    end = bisect.bisect_left(index, hi)
    stop = end * rows if end < len(index) else run["length"]
    return run["start"] + first * rows, stop - first * rows


def _metadata(path: Path, schema: pl.Schema, source: str | None) -> dict[str, Any]:
    raw = pl.read_parquet_metadata(path).get(_META)
    meta = json.loads(raw) if raw else {}
    if meta.get("schema") != table_mark(schema):
        again = f"unimm ingest --sources {source}" if source else "unimm ingest"
        raise UnimmError(
            f"{path} was written by another unimm version (its columns or format differ from this one's): "
            f"run `{again}` again"
        )
    return meta


def check_ingest_table(path: Path, schema: pl.Schema, source: str | None = None) -> None:
    """An error naming the command to run again if `path` was written for another schema."""
    _metadata(path, schema, source)


def _complete(frame: pl.LazyFrame, meta: dict[str, Any], schema: pl.Schema) -> pl.LazyFrame:
    constant = meta["constant"]
    return frame.select(
        pl.lit(constant[c], dtype=t).alias(c) if c in constant else pl.col(c) for c, t in schema.items()
    )


def scan_ingest_table(path: Path, schema: pl.Schema, source: str | None = None) -> pl.LazyFrame:
    """An ingest table with every column of `schema` (INGEST_ANNOTATION_SCHEMA or
    INGEST_IMAGE_SCHEMA), those left out of the file put back."""
    return _complete(pl.scan_parquet(path), _metadata(path, schema, source), schema)


def read_ingest_range(
    path: Path, schema: pl.Schema, source: str | None, hashes: tuple[int, int]
) -> pl.DataFrame:
    """The rows of an ingest table whose partition hash is in `hashes` ([lo, hi)), every
    column of `schema` as `scan_ingest_table`, read from their own row groups only."""
    meta = _metadata(path, schema, source)
    in_range = pl.col(PARTITION_HASH).is_between(*hashes, closed="left")
    # One query per run: polars reads the slices of one file in one query as one whole scan
    # (common-subplan elimination), the whole table for every partition.
    runs = [
        pl.scan_parquet(path).slice(*_rows_of(run, meta["rows"], hashes)).filter(in_range).collect()
        for run in meta["runs"]
    ]
    frame = pl.concat(runs).lazy() if runs else pl.scan_parquet(path)  # no runs: no rows
    return _complete(frame, meta, schema).collect()


def read_ingest_table(path: Path, schema: pl.Schema) -> pl.DataFrame:
    """A whole ingest table (see scan_ingest_table)."""
    return scan_ingest_table(path, schema).collect()
