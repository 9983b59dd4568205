"""Image keys and COCO's file names (unimm.keys): the writer, its polars twin and the parser agree."""

from __future__ import annotations

import polars as pl
import pytest

from unimm.keys import (
    coco_file_name,
    coco_file_name_expr,
    coco_id_from_file_name,
    coco_key,
    image_number_expr,
    partition_hash,
    partition_hash_expr,
    visdial_file_name,
    visdial_file_name_expr,
    visdial_key,
    visdial_key_expr,
)


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


def test_visdial_keys_and_file_names() -> None:
    assert visdial_key(391895, "train") == coco_key(391895)  # VisDial's train pictures are COCO's
    assert visdial_key(185565, "val") == "visdial_val_000000185565"
    assert visdial_file_name(185565, "test") == "VisualDialog_test2018_000000185565.jpg"
    df = pl.DataFrame({"id": [185565]}, schema={"id": pl.Int64})
    for split in ("train", "val", "test"):
        keys = df.select(visdial_key_expr("id", split).alias("k"))["k"].to_list()
        assert keys == [visdial_key(185565, split)]
    names = df.select(visdial_file_name_expr("id", "val").alias("n"))["n"].to_list()
    assert names == [visdial_file_name(185565, "val")]


def test_one_number_per_key_whatever_the_id_space() -> None:
    """The same digits under different prefixes are different pictures: different image numbers
    (merge groups by them) and partition hashes; the polars twins agree with the functions."""
    keys = ["coco_000000000042", "vg_42", "visdial_val_000000000042", "visdial_test_000000000042"]
    numbers = pl.DataFrame({"image_key": keys}).select(image_number_expr())["image_key"].to_list()
    assert len(set(numbers)) == 4 and numbers[:2] == [42, 42 + (1 << 40)]
    hashes = pl.DataFrame({"image_key": keys}).select(partition_hash_expr())["image_key"].to_list()
    assert hashes == [partition_hash(k) for k in keys] and len(set(hashes)) == 4
