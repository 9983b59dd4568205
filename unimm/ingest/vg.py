"""Visual Genome v1.2: `image_data.json` (+ `region_descriptions.json`, `question_answers.json`,
`objects.json`).

Layout differences the real files have: regions and QA lists are keyed by the image under `id`,
objects under `image_id`; boxes are `x, y, width, height` for regions and `x, y, w, h` for
objects. A VG image with a `coco_id` is keyed as that COCO picture. VG answers end with a period
("Green."): the canonical answer drops it, the raw form is kept in `answers[0].raw`.

Objects keep every name (`names`, trimmed; `text` is the first) and their WordNet `synsets`.
The optional `attributes.json` (same layout as `objects.json`, each object with an `attributes`
list) adds each object's attributes, matched by image and `object_id`: trimmed, lower-cased,
empty ones dropped, repeats dropped in first-seen order (an object listed twice in one image is
one object with the union). Names, synsets and box of an object come from `objects.json` when it
lists it. The official `attributes.json` repeats every object with its names and box, so an
object found only there (or every object, when `objects.json` is absent) still becomes one
object row, after those of `objects.json`: dropping it would lose an annotated, boxed object.

Memory: the regions file (0.65 GB, 5.4M regions) is the largest input of the whole pipeline.
Decoded whole into slim `gc=False` Structs it would take ~1.8 GB; instead the file is split into
raw items (views into its 0.65 GB of bytes) and decoded a chunk of images at a time, each chunk
turned into Arrow columns and its Structs dropped (`jsonio.decode_array`): the peak is the bytes,
one chunk and the columns. QA, object and attribute files are read the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import numpy as np
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
    utf8_lists,
)
from unimm.ingest.inputs import unit_files
from unimm.ingest.jsonio import decode_array, decode_file
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH, image_number_expr, number_hash_expr, vg_key_expr

CHUNK_IMAGES = 10_000
# What a row takes from its image, the partition hash and image number included: computed once
# per image rather than once for each of VG's 6.8M rows (0.4 CPU-s).
_IMAGE_COLUMNS = ["vg_id", "image_key", PARTITION_HASH, IMAGE_NUMBER, "width", "height"]


class VgImage(msgspec.Struct, gc=False):
    image_id: int
    width: int | None = None
    height: int | None = None
    coco_id: int | None = None
    url: str | None = None


class VgRegion(msgspec.Struct, gc=False):
    region_id: int
    x: float
    y: float
    width: float
    height: float
    phrase: str


class VgRegionImage(msgspec.Struct, gc=False):
    id: int
    regions: list[VgRegion]


class VgQA(msgspec.Struct, gc=False):
    qa_id: int
    question: str
    answer: str


class VgQAImage(msgspec.Struct, gc=False):
    id: int
    qas: list[VgQA]


class VgObject(msgspec.Struct, gc=False):
    object_id: int
    x: float
    y: float
    w: float
    h: float
    names: list[str] = []
    name: str | None = None  # older releases give a single name
    synsets: list[str] = []


class VgObjectImage(msgspec.Struct, gc=False):
    image_id: int
    objects: list[VgObject]


class VgAttributedObject(VgObject, gc=False):
    attributes: list[str] | None = None  # the key is absent on objects without attributes


class VgAttributeImage(msgspec.Struct, gc=False):
    image_id: int
    attributes: list[VgAttributedObject]


def _chunked(
    path: Path,
    item: type,
    build: Callable[[Sequence, Sequence[int]], pl.DataFrame],
    order: Callable[[int], Sequence[int] | None] | None = None,
) -> pl.DataFrame:
    """Decode an array file chunk by chunk (in `order`, see `decode_array`) into a frame: each
    chunk's Structs are dropped once its columns exist, so the whole file never exists decoded
    at once. `build` returns a chunk's finished rows from its items and their indexes in the
    file, so the intermediate columns (raw boxes, ids for errors) never exist for the whole file
    either."""
    parts = [build(chunk, picked) for picked, chunk in decode_array(path, item, CHUNK_IMAGES, order)]
    return pl.concat(parts) if parts else build([], [])


def _image_order(images: pl.DataFrame) -> Callable[[int], Sequence[int] | None]:
    """The order to decode a regions or QA file in: by the partition hash of image_data's image
    at the same position. The official files list their images in image_data's order, so the
    rows come out in hash order and the table needs no sort (1 CPU-s for VG's 5.4M regions); a
    file in another order gets sorted (`_in_hash_order`), with the same result."""
    hashes = images[PARTITION_HASH].to_numpy()
    return lambda n: np.argsort(hashes, kind="stable") if n == len(hashes) else None


def _in_hash_order(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows by partition hash, in file order (`_rec`, then their order in their record) within
    a hash: what `by_partition_hash` makes of rows read in file order. `_rec` is dropped."""
    h, rec = pl.col(PARTITION_HASH), pl.col("_rec")
    ordered = ((h.diff() > 0) | ((h.diff() == 0) & (rec.diff() >= 0))).fill_null(True).all()
    if not rows.select(ordered).item():
        rows = rows.sort(PARTITION_HASH, "_rec", maintain_order=True)
    return rows.drop("_rec")


def _item_origin(
    chunk: Sequence, picked: Sequence[int], attr: str, id_attr: str, sub: bool = False
) -> dict[str, np.ndarray]:
    """For each item of the images' `attr` lists: its image's index in the file (`_rec`, from
    `picked`), the image id (`vg_id`) and, with `sub`, its position in the list (`_sub`), for
    errors that name `[rec].<attr>[sub]`. Repeated per image in numpy: Python lists of 5.4M
    ints cost 0.4 CPU-s."""
    lengths = np.fromiter((len(getattr(im, attr)) for im in chunk), dtype=np.int64, count=len(chunk))
    ids = np.fromiter((getattr(im, id_attr) for im in chunk), dtype=np.int64, count=len(chunk))
    cols = {
        "_rec": np.repeat(np.asarray(picked, dtype=np.int64), lengths),
        "vg_id": np.repeat(ids, lengths),
    }
    if sub:
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols["_sub"] = (np.arange(len(first), dtype=np.int64) - first).astype(np.int32)
    return cols


def _clean_attributes(col: str) -> pl.Expr:
    """Trimmed, lower-cased attributes without empty ones or repeats, first-seen order kept."""
    e = pl.element().str.strip_chars().str.to_lowercase()
    return pl.col(col).list.eval(e.filter(e != "").unique(maintain_order=True))


def _object_key() -> list[str]:
    # object ids are matched within their image: an id is only known to name one box there
    return ["vg_id", "object_id"]


def _attribute_union() -> pl.Expr:
    """In a group by object: the attributes of all its entries, repeats dropped."""
    return (
        pl.col("attributes").list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)
    )


def _one_per_object(attributed: pl.DataFrame) -> pl.DataFrame:
    """attributes.json rows -> one per (image, object id): the first entry's fields (and its
    `_rec`/`_sub` for errors) with the attributes of all its entries."""
    return attributed.group_by(_object_key(), maintain_order=True).agg(
        pl.all().exclude("attributes").first(), _attribute_union()
    )


class VgIngester(Ingester):
    name = "vg"

    def read(self, data_root: Path) -> SourceTables:
        data_root = Path(data_root)
        present = {f.role: f for f in unit_files(self.name, None, data_root)}
        images = self._images(data_root / present["image_data"].path)
        qa = present.get("qa")
        rows = self._qas(data_root / qa.path, images) if qa else pl.DataFrame()
        img = images.select(
            "image_key",
            PARTITION_HASH,
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.col("vg_id").cast(pl.Utf8).alias("source_image_id"),
            "file_name",
            "width",
            "height",
            "coco_id",
            "vg_id",
        )
        return SourceTables(
            annotations=annotations_frame(rows),
            images=images_frame(img),
            files=[f.path for f in present.values()],
        )

    def read_part(self, data_root: Path, part: str) -> SourceTables:
        if part not in self.parts:
            return super().read_part(data_root, part)
        data_root = Path(data_root)
        present = {f.role: f for f in unit_files(self.name, part, data_root)}
        images = self._images(data_root / present["image_data"].path)
        rows = pl.DataFrame()
        if part == "regions" and "regions" in present:
            rows = self._regions(data_root / present["regions"].path, images)
        elif part == "objects":
            object_files = {r: data_root / present[r].path for r in ("objects", "attributes") if r in present}
            if object_files:
                rows = self._objects(object_files, images)
        return SourceTables(
            annotations=annotations_frame(rows), images=None, files=[f.path for f in present.values()]
        )

    def _images(self, path: Path) -> pl.DataFrame:
        items = decode_file(path, list[VgImage])
        df = pl.DataFrame(
            {
                "vg_id": [i.image_id for i in items],
                "width": [i.width for i in items],
                "height": [i.height for i in items],
                "coco_id": [i.coco_id for i in items],
                "url": [i.url for i in items],
            },
            schema={
                "vg_id": pl.Int64,
                "width": pl.Int32,
                "height": pl.Int32,
                "coco_id": pl.Int64,
                "url": pl.Utf8,
            },
        )
        dup = df.with_row_index("_rec").filter(~pl.col("vg_id").is_first_distinct())
        if dup.height:
            raise InputError(
                path,
                f"image_id {dup['vg_id'][0]} is listed twice",
                record=f"[{dup['_rec'][0]}]",
                field="image_id",
            )
        folder = pl.col("url").str.extract(r"/(VG_100K(?:_2)?)/[^/]*$", 1)
        return (
            df.select(
                vg_key_expr("vg_id", "coco_id").alias("image_key"),
                "vg_id",
                "coco_id",
                "width",
                "height",
                (
                    pl.lit("vg/")
                    + pl.coalesce(folder, pl.lit("VG_100K"))
                    + pl.lit("/")
                    + pl.col("vg_id").cast(pl.Utf8)
                    + pl.lit(".jpg")
                ).alias("file_name"),
            )
            .with_columns(image_number_expr().alias(IMAGE_NUMBER))
            .with_columns(number_hash_expr(pl.col(IMAGE_NUMBER)).alias(PARTITION_HASH))
        )

    def _check_images(self, raw: pl.DataFrame, images: pl.DataFrame, path: Path, field: str) -> None:
        """An image id absent from image_data is an error naming the first such record."""
        unknown = raw.join(images.select("vg_id"), on="vg_id", how="anti")
        if unknown.height:
            row = unknown.sort("_rec").row(0, named=True)
            raise InputError(
                path,
                f"image {row['vg_id']} is not listed in image_data.json",
                record=f"[{row['_rec']}]",
                field=field,
            )

    def _attach(self, raw: pl.DataFrame, images: pl.DataFrame, path: Path, field: str = "id") -> pl.DataFrame:
        """Join rows to their image (key, size), after checking that every image is listed."""
        self._check_images(raw, images, path, field)
        return raw.join(
            images.select(_IMAGE_COLUMNS),
            on="vg_id",
            how="left",
            maintain_order="left",
        )

    def _regions(self, path: Path, images: pl.DataFrame) -> pl.DataFrame:
        def build(chunk: Sequence[VgRegionImage], picked: Sequence[int]) -> pl.DataFrame:
            regs = [r for im in chunk for r in im.regions]
            raw = pl.DataFrame(
                {
                    **_item_origin(chunk, picked, "regions", "id"),
                    "region_id": [r.region_id for r in regs],
                    "x": [r.x for r in regs],
                    "y": [r.y for r in regs],
                    "w": [r.width for r in regs],
                    "h": [r.height for r in regs],
                    "phrase": utf8([r.phrase for r in regs]),
                },
                schema_overrides={
                    "_rec": pl.Int64,
                    "vg_id": pl.Int64,
                    "region_id": pl.Int64,
                    "x": pl.Float64,
                    "y": pl.Float64,
                    "w": pl.Float64,
                    "h": pl.Float64,
                },
            )
            return self._attach(raw, images, path).select(
                "image_key",
                PARTITION_HASH,
                IMAGE_NUMBER,
                pl.lit(self.name).alias("source"),
                pl.lit("all").alias("split"),
                pl.lit("region").alias("kind"),
                pl.col("region_id").cast(pl.Utf8).alias("source_id"),
                strip_expr("phrase").alias("text"),
                bbox_expr("x", "y", "w", "h", "width", "height").alias("bbox"),
                "_rec",
            )

        return _in_hash_order(_chunked(path, VgRegionImage, build, _image_order(images)))

    def _qas(self, path: Path, images: pl.DataFrame) -> pl.DataFrame:
        def build(chunk: Sequence[VgQAImage], picked: Sequence[int]) -> pl.DataFrame:
            qas = [q for im in chunk for q in im.qas]
            raw = pl.DataFrame(
                {
                    **_item_origin(chunk, picked, "qas", "id"),
                    "qa_id": [q.qa_id for q in qas],
                    "question": utf8([q.question for q in qas]),
                    "raw": utf8([q.answer for q in qas]),
                },
                schema_overrides={"_rec": pl.Int64, "vg_id": pl.Int64, "qa_id": pl.Int64},
            )
            return self._finish_qas(self._attach(raw, images, path))

        return _in_hash_order(_chunked(path, VgQAImage, build, _image_order(images)))

    def _finish_qas(self, raw: pl.DataFrame) -> pl.DataFrame:
        # "Green." -> "Green": VG writes answers as sentences; other sources' answers carry no period
        answer = pl.col("raw").str.strip_chars().str.strip_suffix(".")
        return raw.with_columns(answer.alias("answer")).select(
            "image_key",
            PARTITION_HASH,
            IMAGE_NUMBER,
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.lit("qa").alias("kind"),
            pl.col("qa_id").cast(pl.Utf8).alias("source_id"),
            strip_expr("question").alias("text"),
            "answer",
            pl.concat_list(
                pl.struct(
                    pl.col("answer").alias("text"),
                    pl.col("raw").alias("raw"),
                    pl.lit(None, pl.Utf8).alias("confidence"),
                )
            ).alias("answers"),
            "_rec",
        )

    def _objects(self, paths: dict[str, Path], images: pl.DataFrame) -> pl.DataFrame:
        """Object rows from objects.json and/or attributes.json (see the module docstring)."""
        if "attributes" not in paths:
            path = paths["objects"]
            rows = self._named(self._object_file(path, "objects", images), path, "objects")
            rows = rows.with_columns(pl.lit([], dtype=pl.List(pl.Utf8)).alias("attributes"))
        else:
            path = paths["attributes"]
            attributed = self._object_file(path, "attributes", images).with_columns(
                _clean_attributes("attributes")
            )
            if "objects" in paths:
                rows = self._with_attributes(paths["objects"], attributed, path, images)
            else:
                rows = self._named(_one_per_object(attributed), path, "attributes")
        return rows.join(
            images.select(_IMAGE_COLUMNS),
            on="vg_id",
            how="left",
            maintain_order="left",
        ).select(
            "image_key",
            PARTITION_HASH,
            IMAGE_NUMBER,
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.lit("object").alias("kind"),
            pl.col("object_id").cast(pl.Utf8).alias("source_id"),
            pl.col("names").list.first().alias("text"),
            bbox_expr("x", "y", "w", "h", "width", "height").alias("bbox"),
            "names",
            "synsets",
            "attributes",
        )

    def _with_attributes(
        self, objects_path: Path, attributed: pl.DataFrame, path: Path, images: pl.DataFrame
    ) -> pl.DataFrame:
        """objects.json rows with the attributes of their attributes.json entries, then one row
        per object that only attributes.json lists."""
        objects = self._named(self._object_file(objects_path, "objects", images), objects_path, "objects")
        known = objects.join(
            attributed.group_by(_object_key(), maintain_order=True).agg(_attribute_union()),
            on=_object_key(),
            how="left",
            maintain_order="left",
        ).with_columns(pl.col("attributes").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))))
        only_here = attributed.join(objects.select(_object_key()), on=_object_key(), how="anti")
        only_here = self._named(_one_per_object(only_here), path, "attributes")
        return pl.concat([known, only_here.select(known.columns)], how="vertical")

    def _object_file(self, path: Path, list_name: str, images: pl.DataFrame) -> pl.DataFrame:
        """objects.json or attributes.json -> one row per listed object (names trimmed; an
        `attributes` column for attributes.json), every image checked against image_data."""
        typ = VgObjectImage if list_name == "objects" else VgAttributeImage

        def build(chunk: Sequence, picked: Sequence[int]) -> pl.DataFrame:
            objs = [o for im in chunk for o in getattr(im, list_name)]
            cols = {
                **_item_origin(chunk, picked, list_name, "image_id", sub=True),
                "object_id": [o.object_id for o in objs],
                "x": [o.x for o in objs],
                "y": [o.y for o in objs],
                "w": [o.w for o in objs],
                "h": [o.h for o in objs],
                # older releases give one `name` instead of `names`
                "names": utf8_lists([o.names or ([o.name] if o.name is not None else []) for o in objs]),
                "synsets": utf8_lists([o.synsets for o in objs]),
            }
            if list_name == "attributes":
                cols["attributes"] = utf8_lists([o.attributes for o in objs])
            return pl.DataFrame(
                cols,
                schema_overrides={
                    "_rec": pl.Int64,
                    "_sub": pl.Int32,
                    "vg_id": pl.Int64,
                    "object_id": pl.Int64,
                    "x": pl.Float64,
                    "y": pl.Float64,
                    "w": pl.Float64,
                    "h": pl.Float64,
                },
            )

        raw = _chunked(path, typ, build)
        self._check_images(raw, images, path, "image_id")
        return raw.with_columns(
            pl.col(c).list.eval(pl.element().str.strip_chars()) for c in ("names", "synsets")
        )

    def _named(self, rows: pl.DataFrame, path: Path, list_name: str) -> pl.DataFrame:
        """Rows that become objects need a name: the first nameless one is an error."""
        nameless = rows.filter(pl.col("names").list.len() == 0)
        if nameless.height:
            row = nameless.row(0, named=True)
            raise InputError(
                path,
                "object has no name",
                record=f"[{row['_rec']}].{list_name}[{row['_sub']}]",
                field="names",
            )
        return rows
