"""Image keys and COCO's file names (unimm.keys): the writer, its polars twin and the parser agree."""

from __future__ import annotations

import polars as pl
import pytest

from unimm.keys import coco_file_name, coco_file_name_expr, coco_id_from_file_name, coco_key


@pytest.mark.parametrize(
    ("split", "name"),
    [("train2014", "COCO_train2014_000000391895.jpg"), ("val2017", "000000391895.jpg")],
)
def test_coco_file_names_per_release(split: str, name: str) -> None:
    assert coco_file_name(391895, split) == name
    df = pl.DataFrame({"id": [391895, 9]}, schema={"id": pl.Int64})
    names = df.select(coco_file_name_expr("id", split).alias("n"))["n"].to_list()
    assert names == [coco_file_name(391895, split), coco_file_name(9, split)]
    assert coco_id_from_file_name(name) == 391895
    assert coco_id_from_file_name(f"coco/{split}/{name}") == 391895


def test_parser_takes_every_spelling_and_nothing_else() -> None:
    for name in ("33471.jpg", "COCO_val2014_000000033471.JPG", "a\\b\\000000033471.png", "0033471.jpeg"):
        assert coco_id_from_file_name(name) == 33471, name
    for name in ("VG_100K/foo_12.jpg", "n161313.jpg", "coco_000000033471.jpg", "12.gif", ""):
        assert coco_id_from_file_name(name) is None, name
    assert coco_key(33471) == "coco_000000033471"
