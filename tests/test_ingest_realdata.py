"""Ingest the real COCO-mini and Visual Genome excerpts exactly as distributed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.merge_helpers import source_annotations
from unimm.ingest import run_ingest
from unimm.ingest.tablefile import read_ingest_table
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH
from unimm.merge import annotation_tables
from unimm.pipeline.layout import Layout
from unimm.schema import Annotation, Answer, ImageRef
from unimm.tables import INGEST_ANNOTATION_SCHEMA, INGEST_IMAGE_SCHEMA

VG_FILES = ("image_data", "region_descriptions", "question_answers", "objects", "attributes")


def data_root(realdata: Path, tmp_path: Path, *, coco2014_copy: bool = False) -> Path:
    """Our data-root layout, made of symlinks to the real files."""
    root = tmp_path / "data"
    ann = root / "coco" / "annotations"
    ann.mkdir(parents=True)
    for f in sorted((realdata / "coco-mini" / "annotations").glob("*.json")):
        (ann / f.name).symlink_to(f)
    if coco2014_copy:
        # the 2014 release carries the same caption ids as 2017: stand one in with the 2017 file
        (ann / "captions_train2014.json").symlink_to(
            realdata / "coco-mini" / "annotations" / "captions_train2017.json"
        )
    (root / "vg").mkdir()
    for name in VG_FILES:
        (root / "vg" / f"{name}.json").symlink_to(realdata / "visual_genome" / f"{name}.json")
    return root


@pytest.fixture(scope="module")
def work(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("real")
    out = tmp / "work"
    results = run_ingest(data_root(realdata, tmp), out, ["coco", "vg"], jobs=1)
    assert {r.source: r.annotations for r in results} == {
        "coco": {"caption": 795, "object": 1363},
        "vg": {"qa": 721, "region": 1278, "object": 177},
    }
    return out


def test_vg_tables_do_not_depend_on_the_decode_chunk(
    work: Path, realdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VG files are decoded and turned into columns a chunk of images at a time: one image a
    chunk gives the very same tables as the default chunk (here: all images in one)."""
    from unimm.ingest import vg

    monkeypatch.setattr(vg, "CHUNK_IMAGES", 1)
    other = tmp_path / "work"
    run_ingest(data_root(realdata, tmp_path), other, ["vg"], jobs=1)
    for table in (*annotation_tables(Layout(work), "vg"), Layout(work).ingest_images("vg")):
        assert pl.read_parquet(other / table.relative_to(work)).equals(pl.read_parquet(table)), table.name


def test_vg_tables_do_not_depend_on_the_order_of_the_images(
    work: Path, realdata: Path, tmp_path: Path
) -> None:
    """Regions and QAs are decoded in the hash order of image_data's images, which the official
    files list in the same order: files listing their images in another order (here: reversed)
    are sorted instead, into the very same tables."""
    root = data_root(realdata, tmp_path)
    for name in ("region_descriptions", "question_answers"):
        path = root / "vg" / f"{name}.json"
        items = json.loads(path.read_text())
        path.unlink()
        path.write_text(json.dumps(items[::-1]))
    other = tmp_path / "work"
    run_ingest(root, other, ["vg"], jobs=1)
    for table in annotation_tables(Layout(work), "vg"):
        assert pl.read_parquet(other / table.relative_to(work)).equals(pl.read_parquet(table)), table.name


def test_rows_decoded_out_of_order_are_put_in_hash_then_file_order() -> None:
    """Equal hashes (one image listed twice, or two images whose hashes collide) keep file order."""
    from unimm.ingest.vg import _in_hash_order

    rows = pl.DataFrame({PARTITION_HASH: [5, 5, 7, 2], "_rec": [3, 1, 0, 9], "text": ["a", "b", "c", "d"]})
    assert _in_hash_order(rows)["text"].to_list() == ["d", "b", "a", "c"]
    ties = pl.DataFrame({PARTITION_HASH: [2, 5, 5, 7], "_rec": [9, 3, 1, 0], "text": ["d", "a", "b", "c"]})
    assert _in_hash_order(ties)["text"].to_list() == ["d", "b", "a", "c"]
    ordered = pl.DataFrame({PARTITION_HASH: [2, 5, 5, 7], "_rec": [9, 1, 3, 0], "text": ["d", "b", "a", "c"]})
    assert _in_hash_order(ordered).equals(ordered.drop("_rec"))


@pytest.mark.parametrize("source", ["coco", "vg"])
def test_rows_carry_the_partition_hash_of_their_image_in_hash_order(work: Path, source: str) -> None:
    """VG rows take the hash and the image number from their image (computed once per image):
    they must be those of the row's own key, and each run of the table sorted by the hash."""
    from unimm.keys import IMAGE_NUMBER, image_number_expr, partition_hash_expr

    for table, schema in (
        (Layout(work).ingest_table(source), INGEST_ANNOTATION_SCHEMA),
        (Layout(work).ingest_images(source), INGEST_IMAGE_SCHEMA),
    ):
        df = read_ingest_table(table, schema)
        assert df.height and df[PARTITION_HASH].equals(
            df.select(partition_hash_expr().alias(PARTITION_HASH))[PARTITION_HASH]
        )
        if IMAGE_NUMBER in schema:
            assert df[IMAGE_NUMBER].equals(df.select(image_number_expr().alias(IMAGE_NUMBER))[IMAGE_NUMBER])
        # one run per file an ingester reads: a split's file of one kind
        run_keys = ["split", "kind"] if "kind" in df.columns else ["split"]
        runs = df.group_by(run_keys, maintain_order=True).agg(pl.col(PARTITION_HASH))
        assert all(pl.Series(h).is_sorted() for h in runs[PARTITION_HASH].to_list()), table.name


def test_coco_counts(work: Path) -> None:
    df = read_ingest_table(Layout(work).ingest_table("coco"), INGEST_ANNOTATION_SCHEMA)
    train = df.filter(pl.col("split") == "train2017")
    assert train.filter(pl.col("kind") == "caption").height == 400
    assert train.filter(pl.col("kind") == "object").height == 739
    assert df.filter(pl.col("kind") == "caption")["source_id"].n_unique() == 795
    imgs = read_ingest_table(Layout(work).ingest_images("coco"), INGEST_IMAGE_SCHEMA)
    assert imgs.height == 159 and imgs.filter(pl.col("split") == "train2017").height == 80


def test_coco_real_captions_trimmed_case_kept(work: Path) -> None:
    df = read_ingest_table(Layout(work).ingest_table("coco"), INGEST_ANNOTATION_SCHEMA).filter(
        pl.col("kind") == "caption"
    )
    text = dict(zip(df["source_id"], df["text"], strict=True))
    assert text["628032"] == "an offica kitchen with white cabinets and some yellow walls"
    assert text["189189"] == "A PERSON IS SKIING ON THE SLOPE"
    assert text["446659"] == "LARGE BLACK AND WHITE PANDA BEAR WALKING AROUND IN AN ENCLOSURE"
    row = df.filter(pl.col("source_id") == "576694").row(0, named=True)
    assert (
        row["image_key"] == "coco_000000535506"
        and row["text"] == "A woman in a kitchen at the sink holding a knife."
    )


def test_coco_real_boxes_match_the_file(work: Path, realdata: Path) -> None:
    doc = json.loads((realdata / "coco-mini" / "annotations" / "instances_train2017.json").read_text())
    size = {i["id"]: (i["width"], i["height"]) for i in doc["images"]}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    df = read_ingest_table(Layout(work).ingest_table("coco"), INGEST_ANNOTATION_SCHEMA).filter(
        pl.col("kind") == "object"
    )
    got = {r["source_id"]: r for r in df.iter_rows(named=True)}
    for a in doc["annotations"][::50]:
        w, h = size[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        row = got[str(a["id"])]
        assert row["text"] == names[a["category_id"]]
        assert row["bbox"] == pytest.approx([x / w, y / h, bw / w, bh / h], abs=1e-5)


def test_coco_real_crowd_boxes_keep_iscrowd(work: Path, realdata: Path) -> None:
    crowd: dict[str, bool] = {}
    for split in ("train", "val"):
        doc = json.loads((realdata / "coco-mini" / "annotations" / f"instances_{split}2017.json").read_text())
        crowd |= {str(a["id"]): a["iscrowd"] == 1 for a in doc["annotations"]}
    df = read_ingest_table(Layout(work).ingest_table("coco"), INGEST_ANNOTATION_SCHEMA).filter(
        pl.col("kind") == "object"
    )
    assert dict(zip(df["source_id"], df["iscrowd"], strict=True)) == crowd
    assert sum(crowd.values()) == 13  # the excerpt has real crowd boxes (8 train, 5 val)


def test_coco_image_refs(work: Path) -> None:
    imgs = {
        r["file_name"]: r
        for r in read_ingest_table(Layout(work).ingest_images("coco"), INGEST_IMAGE_SCHEMA).iter_rows(
            named=True
        )
    }
    r = imgs["coco/train2017/000000493652.jpg"]
    assert (r["width"], r["height"], r["coco_id"], r["image_key"]) == (640, 399, 493652, "coco_000000493652")


def test_vg_real_records(work: Path) -> None:
    df = source_annotations(work, "vg").drop(PARTITION_HASH, IMAGE_NUMBER)
    rows = {(r["kind"], r["source_id"]): r for r in df.iter_rows(named=True)}
    qa = Annotation.model_validate(rows[("qa", "986768")])
    assert qa.text == "What color is the clock?" and qa.answer == "Green"
    assert qa.answers == [Answer(text="Green", raw="Green.")] and qa.image_key == "vg_1"
    assert rows[("qa", "986780")]["answer"] == "Parked on the street"
    region = Annotation.model_validate(rows[("region", "1383")])
    assert region.text == "shade is along the street"
    assert region.bbox == pytest.approx([194 / 800, 372 / 600, 182 / 800, 109 / 600], abs=1e-6)
    assert rows[("object", "1058498")]["text"] == "clock"
    per_image = df.filter(pl.col("kind") == "region").group_by("image_key").len()
    assert per_image.height == 5
    imgs = read_ingest_table(Layout(work).ingest_images("vg"), INGEST_IMAGE_SCHEMA)
    files = dict(zip(imgs["image_key"], imgs["file_name"], strict=True))
    assert sorted(files) == ["vg_1", "vg_2", "vg_3", "vg_4", "vg_5"]
    assert (files["vg_1"], files["vg_2"]) == ("vg/VG_100K_2/1.jpg", "vg/VG_100K/2.jpg")


def _vg_objects(df: pl.DataFrame) -> dict[str, dict]:
    return {r["source_id"]: r for r in df.filter(pl.col("kind") == "object").iter_rows(named=True)}


def test_vg_real_objects_keep_every_name_and_synset(work: Path, realdata: Path) -> None:
    raw = json.loads((realdata / "visual_genome" / "objects.json").read_text())
    got = _vg_objects(source_annotations(work, "vg"))
    listed = [o for im in raw for o in im["objects"]]
    assert len(got) == len(listed)
    for o in listed:
        row = got[str(o["object_id"])]
        assert row["names"] == [n.strip() for n in o["names"]] and row["text"] == row["names"][0]
        assert row["synsets"] == o["synsets"]
    monitor = got["1060246"]  # a real object with two names
    assert monitor["names"] == ["monitor", "computer"] and monitor["synsets"] == ["monitor.n.04"]
    assert sum(len(r["names"]) > 1 for r in got.values()) == 12
    assert got["1058536"]["synsets"] == []  # "work truck": VG gives it no synset


def test_vg_real_attributes_match_the_file(work: Path, realdata: Path) -> None:
    raw = json.loads((realdata / "visual_genome" / "attributes.json").read_text())
    got = _vg_objects(source_annotations(work, "vg"))
    for o in (o for im in raw for o in im["attributes"]):
        want = list(dict.fromkeys(a.strip().lower() for a in o.get("attributes") or [] if a.strip()))
        assert got[str(o["object_id"])]["attributes"] == want
    assert got["1058498"]["attributes"] == ["green", "tall"]  # the clock of "What color is the clock?"
    assert got["1058508"]["attributes"] == ["tall", "brick", "made of bricks"]
    assert got["5045"]["attributes"] == []  # listed without attributes
    assert sum(bool(r["attributes"]) for r in got.values()) > 50


def test_real_records_merge_with_their_grounding_fields(work: Path) -> None:
    from unimm.merge import MergeConfig, merge, merged_parts
    from unimm.schema import MergedImage

    merge(work, MergeConfig())
    recs = {}
    for p in merged_parts(work):
        for row in pl.read_parquet(p).iter_rows(named=True):
            m = MergedImage.model_validate(row)
            recs[m.image_key] = m
    clock = next(o for o in recs["vg_1"].objects if o.source_ids == ["1058498"])
    assert (clock.name, clock.names, clock.synsets, clock.attributes) == (
        "clock",
        ["clock"],
        ["clock.n.01"],
        ["green", "tall"],
    )
    assert clock.iscrowd is None
    crowd = [o for r in recs.values() for o in r.objects if o.iscrowd]
    assert len(crowd) == 13 and all(o.sources == ["coco"] for o in crowd)


def test_sample_rows_validate_against_the_models(work: Path) -> None:
    for source in ("coco", "vg"):
        df = source_annotations(work, source).drop(PARTITION_HASH, IMAGE_NUMBER)
        for row in df.sample(n=min(200, df.height), seed=7).iter_rows(named=True):
            Annotation.model_validate(row)
        for row in (
            read_ingest_table(Layout(work).ingest_images(source), INGEST_IMAGE_SCHEMA)
            .drop(PARTITION_HASH)
            .iter_rows(named=True)
        ):
            ImageRef.model_validate(row)


def test_2014_and_2017_together_keep_each_caption_once(realdata: Path, tmp_path: Path) -> None:
    root = data_root(realdata, tmp_path, coco2014_copy=True)
    shutil.rmtree(root / "vg")
    (result,) = run_ingest(root, tmp_path / "work", ["coco"], jobs=1)
    df = read_ingest_table(Layout(tmp_path / "work").ingest_table("coco"), INGEST_ANNOTATION_SCHEMA).filter(
        pl.col("kind") == "caption"
    )
    assert df.height == df["source_id"].n_unique() == 795 == result.annotations["caption"]
    imgs = read_ingest_table(Layout(tmp_path / "work").ingest_images("coco"), INGEST_IMAGE_SCHEMA)
    assert imgs.filter(pl.col("split") == "train2014").height == 80  # one ref per release file
    assert imgs["file_name"].n_unique() == imgs.height
