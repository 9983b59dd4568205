"""COCO captions (`captions_*.json`) and instances (`instances_*.json`), 2014 and/or 2017.

The 2014 and 2017 releases hold the same images and the same caption/instance ids, so when both
are present each annotation id is kept once (first file in catalogue order: 2014 before 2017,
train before val) while image refs are kept once per image file (one per release it is in).

Instances keep `iscrowd` (0/1 in the files, a bool here): a crowd box covers several objects of
its category, so a count read from it is a lower bound.

Memory: one annotation file is decoded at a time and its Structs are dropped once its columns
exist; captions_train2014 (414k captions) peaks near 0.3 GB, the instance files skip their large
`segmentation` arrays inside the decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import polars as pl

from unimm.errors import InputError
from unimm.ingest.base import (
    Ingester,
    SourceTables,
    annotations_frame,
    bbox_expr,
    images_frame,
    strip_expr,
    utf8,
)
from unimm.ingest.jsonio import decode_file
from unimm.keys import coco_file_name_expr, coco_key_expr


class CocoImage(msgspec.Struct, gc=False):
    id: int
    width: int
    height: int
    file_name: str | None = None


class CocoCaption(msgspec.Struct, gc=False):
    id: int
    image_id: int
    caption: str


class CocoCategory(msgspec.Struct, gc=False):
    id: int
    name: str


class CocoInstance(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    bbox: Annotated[list[float], msgspec.Meta(min_length=4, max_length=4)]
    # 0/1 in the official files; absent means unknown (null), not "not a crowd"
    iscrowd: Annotated[int, msgspec.Meta(ge=0, le=1)] | None = None


class CaptionsFile(msgspec.Struct, gc=False):
    images: list[CocoImage]
    annotations: list[CocoCaption]


class InstancesFile(msgspec.Struct, gc=False):
    images: list[CocoImage]
    annotations: list[CocoInstance]
    categories: list[CocoCategory]


def _images(images: list[CocoImage], split: str) -> pl.DataFrame:
    df = pl.DataFrame(
        {
            "coco_id": [i.id for i in images],
            "width": [i.width for i in images],
            "height": [i.height for i in images],
            "orig_name": utf8([i.file_name for i in images]),
        },
        schema_overrides={"coco_id": pl.Int64, "width": pl.Int32, "height": pl.Int32},
    )
    default = coco_file_name_expr("coco_id", split)  # where an image lists no file_name
    return df.select(
        coco_key_expr("coco_id").alias("image_key"),
        pl.lit("coco").alias("source"),
        pl.lit(split).alias("split"),
        pl.col("coco_id").cast(pl.Utf8).alias("source_image_id"),
        (pl.lit(f"coco/{split}/") + pl.coalesce(pl.col("orig_name"), default)).alias("file_name"),
        "width",
        "height",
        "coco_id",
    )


def _check_image_ids(ann: pl.DataFrame, images: pl.DataFrame, file: str) -> None:
    unknown = ann.with_row_index("_rec").join(
        images.select("coco_id"), left_on="image_id", right_on="coco_id", how="anti"
    )
    if unknown.height:
        row = unknown.row(0, named=True)
        raise InputError(
            file,
            f"image id {row['image_id']} is not listed in the file's images",
            record=f"annotations[{row['_rec']}]",
            field="image_id",
        )


class CocoIngester(Ingester):
    name = "coco"

    def read(self, data_root: Path) -> SourceTables:
        data_root = Path(data_root)
        anns: list[pl.DataFrame] = []
        imgs: list[pl.DataFrame] = []
        files: list[str] = []
        for f in self._present(data_root):
            path = data_root / f.path
            files.append(f.path)
            if f.role == "captions":
                a, i = self._captions(path, f.split)
            else:
                a, i = self._instances(path, f.split)
            anns.append(a)
            imgs.append(i)
        ann = pl.concat(anns, how="vertical") if anns else annotations_frame(pl.DataFrame())
        img = pl.concat(imgs, how="vertical") if imgs else images_frame(pl.DataFrame())
        # same ids in both releases: keep each annotation once, each image file once
        ann = ann.unique(subset=["kind", "source_id"], keep="first", maintain_order=True)
        img = img.unique(subset=["file_name"], keep="first", maintain_order=True)
        return SourceTables(annotations=ann, images=img, files=files)

    def _captions(self, path: Path, split: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        doc = decode_file(path, CaptionsFile)
        images = _images(doc.images, split)
        a = doc.annotations
        raw = pl.DataFrame(
            {
                "id": [c.id for c in a],
                "image_id": [c.image_id for c in a],
                "caption": utf8([c.caption for c in a]),
            },
            schema_overrides={"id": pl.Int64, "image_id": pl.Int64},
        )
        del doc, a
        ann = raw.select(
            coco_key_expr("image_id").alias("image_key"),
            pl.lit("coco").alias("source"),
            pl.lit(split).alias("split"),
            pl.lit("caption").alias("kind"),
            pl.col("id").cast(pl.Utf8).alias("source_id"),
            strip_expr("caption").alias("text"),
        )
        return annotations_frame(ann), images_frame(images)

    def _instances(self, path: Path, split: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        doc = decode_file(path, InstancesFile)
        images = _images(doc.images, split)
        cats = pl.DataFrame(
            {"category_id": [c.id for c in doc.categories], "name": [c.name for c in doc.categories]},
            schema={"category_id": pl.Int64, "name": pl.Utf8},
        )
        a = doc.annotations
        raw = pl.DataFrame(
            {
                "id": [o.id for o in a],
                "image_id": [o.image_id for o in a],
                "category_id": [o.category_id for o in a],
                "bx": [o.bbox[0] for o in a],
                "by": [o.bbox[1] for o in a],
                "bw": [o.bbox[2] for o in a],
                "bh": [o.bbox[3] for o in a],
                "iscrowd": [o.iscrowd for o in a],
            },
            schema={
                "id": pl.Int64,
                "image_id": pl.Int64,
                "category_id": pl.Int64,
                "bx": pl.Float64,
                "by": pl.Float64,
                "bw": pl.Float64,
                "bh": pl.Float64,
                "iscrowd": pl.Int8,
            },
        )
        del doc, a
        file = str(path)
        _check_image_ids(raw, images, file)
        unknown = raw.with_row_index("_rec").join(cats, on="category_id", how="anti")
        if unknown.height:
            row = unknown.row(0, named=True)
            raise InputError(
                file,
                f"category id {row['category_id']} is not listed in the file's categories",
                record=f"annotations[{row['_rec']}]",
                field="category_id",
            )
        joined = raw.join(cats, on="category_id", how="left", maintain_order="left").join(
            images.select("coco_id", "width", "height"),
            left_on="image_id",
            right_on="coco_id",
            how="left",
            maintain_order="left",
        )
        ann = joined.select(
            coco_key_expr("image_id").alias("image_key"),
            pl.lit("coco").alias("source"),
            pl.lit(split).alias("split"),
            pl.lit("object").alias("kind"),
            pl.col("id").cast(pl.Utf8).alias("source_id"),
            strip_expr("name").alias("text"),
            bbox_expr("bx", "by", "bw", "bh", "width", "height").alias("bbox"),
            pl.col("iscrowd").cast(pl.Boolean),
        )
        return annotations_frame(ann), images_frame(images)
