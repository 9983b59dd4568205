"""The ingest table files: sparse columns put back exactly, the schema mark, row groups by hash."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from unimm.errors import UnimmError
from unimm.ingest.base import annotations_frame, images_frame
from unimm.ingest.tablefile import (
    GROUPS_PER_PARTITION,
    ROW_GROUP_ROWS,
    _rows_of,
    check_ingest_table,
    read_ingest_range,
    read_ingest_table,
    write_ingest_table,
)
from unimm.keys import IMAGES_PER_PARTITION, PARTITION_HASH, partition_range
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
    back = read_ingest_range(path, INGEST_IMAGE_SCHEMA, None, (0, 10))
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


def _qa_run(images: range, per_image: int, split: str, answers: bool) -> pl.DataFrame:
    n = len(images) * per_image
    return annotations_frame(
        pl.DataFrame(
            {
                "image_key": [f"coco_{images[i // per_image]}" for i in range(n)],
                "source": "vqav2",
                "split": split,
                "kind": "qa",
                "source_id": [f"{split}{i}" for i in range(n)],
                "text": "what is it?",
                "answer": "a cat",
                **(
                    {"answers": [[{"text": "a cat", "raw": "a cat", "confidence": None}]] * n}
                    if answers
                    else {}
                ),
            }
        )
    )


# with lists of answer structs (VQAv2) pyarrow writes the table, without them (VG's QAs) polars
@pytest.mark.parametrize(
    "images, per_image, answers",
    [(40_000, 1, True), (2_000, 200, True), (40_000, 1, False)],
    ids=["pyarrow-writer", "pyarrow-writer-200-per-image", "polars-writer"],
)
def test_a_partition_reads_its_own_rows_by_the_hash_index(
    tmp_path: Path, images: int, per_image: int, answers: bool
):
    """Row groups are sized by the images they cover; a hash range reads back exactly the rows
    of that range from each sorted run (here two splits), at any partition count, through
    slices of at most its rows and two row groups per run; the content reads back whole."""
    half = images // 2
    frame = pl.concat(
        [
            _qa_run(range(half), per_image, "train", answers),
            _qa_run(range(half, images), per_image, "val", answers),
        ]
    )
    n = frame.height
    path = tmp_path / "t.parquet"
    write_ingest_table(frame, path)
    meta = pq.ParquetFile(path).metadata
    want = n * IMAGES_PER_PARTITION // (GROUPS_PER_PARTITION * images)
    rows = min(max(want, ROW_GROUP_ROWS[0]), ROW_GROUP_ROWS[1])
    assert meta.num_row_groups > 1 and meta.row_group(0).num_rows == rows
    mark = json.loads(pl.read_parquet_metadata(path)["unimm.ingest"])
    assert [(r["start"], r["length"]) for r in mark["runs"]] == [(0, n // 2), (n // 2, n // 2)]
    for partitions in (1, 3, 7, 64):
        for p in range(partitions):
            lo, hi = partition_range(p, partitions)
            got = read_ingest_range(path, INGEST_ANNOTATION_SCHEMA, None, (lo, hi))
            assert got.equals(frame.filter(pl.col(PARTITION_HASH).is_between(lo, hi, closed="left")))
            read = sum(_rows_of(run, rows, (lo, hi))[1] for run in mark["runs"])
            assert read <= got.height + 2 * 2 * rows
    assert read_ingest_table(path, INGEST_ANNOTATION_SCHEMA).equals(frame)
