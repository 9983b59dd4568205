"""The ingest table files: sparse columns put back exactly, the schema mark, row groups by hash."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from unimm.errors import UnimmError
from unimm.ingest.base import annotations_frame, images_frame
from unimm.ingest.tablefile import (
    GROUPS_PER_PARTITION,
    ROW_GROUP_ROWS,
    check_ingest_table,
    read_ingest_table,
    scan_ingest_table,
    write_ingest_table,
)
from unimm.keys import IMAGES_PER_PARTITION, PARTITION_HASH
from unimm.tables import INGEST_ANNOTATION_SCHEMA, INGEST_IMAGE_SCHEMA


def _objects() -> pl.DataFrame:
    """Two object rows: `names` filled, `synsets` empty in both, `attributes` empty in one only,
    `answer` null in both, `bbox` null in one only."""
    return annotations_frame(
        pl.DataFrame(
            {
                "image_key": ["vg_1", "vg_2"],
                "source": "vg",
                "split": "all",
                "kind": "object",
                "source_id": ["10", "11"],
                "text": ["clock", "tower"],
                "bbox": pl.Series([[0.1, 0.2, 0.3, 0.4], None], dtype=pl.List(pl.Float32)),
                "names": [["clock"], ["tower"]],
                "synsets": pl.Series([[], []], dtype=pl.List(pl.Utf8)),
                "attributes": [["white"], []],
            }
        )
    )


def test_constant_columns_stay_out_of_the_file_and_read_back_exactly(tmp_path: Path):
    """Columns of one value are kept in the metadata only; the table reads back equal."""
    frame = _objects()
    path = tmp_path / "vg.parquet"
    write_ingest_table(frame, path)
    stored = pl.read_parquet_schema(path)
    # all null (answer), all empty (synsets, rounds) or one value (source, split, kind) -> left
    # out; columns whose rows differ are kept, the hash always
    assert not {"answer", "synsets", "rounds", "source", "split", "kind"} & set(stored)
    assert {"image_key", "text", "bbox", "attributes", "names", PARTITION_HASH} <= set(stored)
    back = read_ingest_table(path, INGEST_ANNOTATION_SCHEMA)
    assert back.schema == INGEST_ANNOTATION_SCHEMA
    assert back.equals(frame)
    assert back["synsets"].to_list() == [[], []] and back["answer"].to_list() == [None, None]
    assert back["source"].to_list() == ["vg", "vg"] and back["kind"].to_list() == ["object", "object"]


def test_empty_table_reads_back_with_its_schema(tmp_path: Path):
    empty = images_frame(pl.DataFrame(schema={"image_key": pl.Utf8, "source": pl.Utf8}))
    path = tmp_path / "x.images.parquet"
    write_ingest_table(empty, path)
    back = scan_ingest_table(path, INGEST_IMAGE_SCHEMA).filter(pl.col(PARTITION_HASH) < 10).collect()
    assert back.height == 0 and back.schema == INGEST_IMAGE_SCHEMA


def test_table_of_another_schema_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "vg.parquet"
    write_ingest_table(_objects(), path)
    check_ingest_table(path, INGEST_ANNOTATION_SCHEMA, "vg")
    with pytest.raises(
        UnimmError, match=r"vg.parquet was written by another unimm.*unimm ingest --sources vg"
    ):
        check_ingest_table(path, INGEST_IMAGE_SCHEMA, "vg")
    pl.read_parquet(path).write_parquet(path)  # no mark: not written by this unimm's ingest
    with pytest.raises(UnimmError, match=r"run `unimm ingest` again"):
        read_ingest_table(path, INGEST_ANNOTATION_SCHEMA)


@pytest.mark.parametrize("images, per_image", [(40_000, 1), (2_000, 200)])
def test_ingest_row_groups_cover_a_quarter_partition_with_hash_statistics(
    tmp_path: Path, images: int, per_image: int
):
    """Row groups are sized by the images they cover (small ones by pyarrow's writer, the
    largest by polars'), in hash order, with hash statistics a partition's scan can skip by;
    the content reads back whole."""
    n = images * per_image
    frame = annotations_frame(
        pl.DataFrame(
            {
                "image_key": [f"coco_{i // per_image}" for i in range(n)],
                "source": "vqav2",
                "split": "train",
                "kind": "qa",
                "source_id": [str(i) for i in range(n)],
                "text": "what is it?",
                "answer": "a cat",
                "answers": [[{"text": "a cat", "raw": "a cat", "confidence": None}]] * n,
            }
        )
    )
    path = tmp_path / "t.parquet"
    write_ingest_table(frame, path)
    meta = pq.ParquetFile(path).metadata
    want = n * IMAGES_PER_PARTITION // (GROUPS_PER_PARTITION * images)
    assert meta.row_group(0).num_rows == min(max(want, ROW_GROUP_ROWS[0]), ROW_GROUP_ROWS[1])
    col = next(
        j for j in range(meta.num_columns) if meta.row_group(0).column(j).path_in_schema == PARTITION_HASH
    )
    stats = [meta.row_group(g).column(col).statistics for g in range(meta.num_row_groups)]
    assert meta.num_row_groups > 1 and all(s.has_min_max for s in stats)
    assert all(a.max <= b.min for a, b in zip(stats, stats[1:], strict=False))
    assert read_ingest_table(path, INGEST_ANNOTATION_SCHEMA).equals(frame)
