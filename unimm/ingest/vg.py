"""Visual Genome v1.2: `image_data.json` (+ `region_descriptions.json`, `question_answers.json`,
`objects.json`).

Layout differences the real files have: regions and QA lists are keyed by the image under `id`,
objects under `image_id`; boxes are `x, y, width, height` for regions and `x, y, w, h` for
objects. A VG image with a `coco_id` is keyed as that COCO picture. VG answers end with a period
("Green."): the canonical answer drops it, the raw form is kept in `answers[0].raw`.

Memory: the regions file (0.65 GB, 5.4M regions) is the largest input of the whole pipeline.
It is decoded into slim `gc=False` Structs (~1.8 GB), then turned into Arrow columns in chunks of
images; each chunk's Structs are released as soon as its columns exist, so the columns never
coexist with the whole decoded document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import polars as pl

from unimm.errors import InputError
from unimm.ingest.base import (
    Ingester,
    SourceTables,
    annotations_frame,
    bbox_expr,
    expected,
    images_frame,
    strip_expr,
    utf8,
)
from unimm.ingest.jsonio import decode_file
from unimm.keys import vg_key_expr

CHUNK_IMAGES = 10_000


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


class VgObjectImage(msgspec.Struct, gc=False):
    image_id: int
    objects: list[VgObject]


def _chunked(items: list, build: Callable[[Sequence, int], pl.DataFrame]) -> pl.DataFrame:
    """Build a frame chunk by chunk, dropping each chunk's Structs once its columns exist."""
    parts = []
    for start in range(0, len(items), CHUNK_IMAGES):
        end = min(start + CHUNK_IMAGES, len(items))
        parts.append(build(items[start:end], start))
        items[start:end] = [None] * (end - start)
    return pl.concat(parts) if parts else build([], 0)


def _rec_column(chunk: Sequence, start: int, attr: str) -> list[int]:
    return [start + i for i, im in enumerate(chunk) for _ in getattr(im, attr)]


class VgIngester(Ingester):
    name = "vg"

    def missing(self, data_root: Path) -> list[tuple[str, str]]:
        files = expected(self.name)
        present = self._present(data_root)
        if not present:
            return [(f.path, f.archive_url) for f in files]
        out = [(f.path, f.archive_url) for f in files if f.role == "image_data" and f not in present]
        if not any(f.role != "image_data" for f in present):
            out += [(f.path, f.archive_url) for f in files if f.role in ("regions", "qa")]
        return out

    def read(self, data_root: Path) -> SourceTables:
        data_root = Path(data_root)
        present = {f.role: f for f in self._present(data_root)}
        files = [present["image_data"].path]
        images = self._images(data_root / present["image_data"].path)
        parts = []
        for role, fn in (("regions", self._regions), ("qa", self._qas), ("objects", self._objects)):
            if role in present:
                files.append(present[role].path)
                parts.append(annotations_frame(fn(data_root / present[role].path, images)))
        ann = pl.concat(parts) if parts else annotations_frame(pl.DataFrame())
        img = images.select(
            "image_key",
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.col("vg_id").cast(pl.Utf8).alias("source_image_id"),
            "file_name",
            "width",
            "height",
            "coco_id",
            "vg_id",
        )
        return SourceTables(annotations=ann, images=images_frame(img), files=files)

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
        return df.select(
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

    def _attach(self, raw: pl.DataFrame, images: pl.DataFrame, path: Path, list_name: str) -> pl.DataFrame:
        """Join rows to their image (key, size); an image id absent from image_data is an error."""
        unknown = raw.join(images.select("vg_id"), on="vg_id", how="anti")
        if unknown.height:
            row = unknown.sort("_rec").row(0, named=True)
            raise InputError(
                path,
                f"image {row['vg_id']} is not listed in image_data.json",
                record=f"[{row['_rec']}]",
                field="image_id" if list_name == "objects" else "id",
            )
        return raw.join(
            images.select("vg_id", "image_key", "width", "height"),
            on="vg_id",
            how="left",
            maintain_order="left",
        )

    def _regions(self, path: Path, images: pl.DataFrame) -> pl.DataFrame:
        items = decode_file(path, list[VgRegionImage])

        def build(chunk: Sequence[VgRegionImage], start: int) -> pl.DataFrame:
            regs = [r for im in chunk for r in im.regions]
            return pl.DataFrame(
                {
                    "_rec": _rec_column(chunk, start, "regions"),
                    "vg_id": [im.id for im in chunk for _ in im.regions],
                    "region_id": [r.region_id for r in regs],
                    "x": [r.x for r in regs],
                    "y": [r.y for r in regs],
                    "w": [r.width for r in regs],
                    "h": [r.height for r in regs],
                    "phrase": pl.Series(utf8([r.phrase for r in regs]), dtype=pl.Utf8),
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

        raw = _chunked(items, build)
        del items
        return self._attach(raw, images, path, "regions").select(
            "image_key",
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.lit("region").alias("kind"),
            pl.col("region_id").cast(pl.Utf8).alias("source_id"),
            strip_expr("phrase").alias("text"),
            bbox_expr("x", "y", "w", "h", "width", "height").alias("bbox"),
        )

    def _qas(self, path: Path, images: pl.DataFrame) -> pl.DataFrame:
        items = decode_file(path, list[VgQAImage])

        def build(chunk: Sequence[VgQAImage], start: int) -> pl.DataFrame:
            qas = [q for im in chunk for q in im.qas]
            return pl.DataFrame(
                {
                    "_rec": _rec_column(chunk, start, "qas"),
                    "vg_id": [im.id for im in chunk for _ in im.qas],
                    "qa_id": [q.qa_id for q in qas],
                    "question": pl.Series(utf8([q.question for q in qas]), dtype=pl.Utf8),
                    "raw": pl.Series(utf8([q.answer for q in qas]), dtype=pl.Utf8),
                },
                schema_overrides={"_rec": pl.Int64, "vg_id": pl.Int64, "qa_id": pl.Int64},
            )

        raw = _chunked(items, build)
        del items
        # "Green." -> "Green": VG writes answers as sentences; other sources' answers carry no period
        answer = pl.col("raw").str.strip_chars().str.replace(r"\.$", "")
        return (
            self._attach(raw, images, path, "qas")
            .with_columns(answer.alias("answer"))
            .select(
                "image_key",
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
            )
        )

    def _objects(self, path: Path, images: pl.DataFrame) -> pl.DataFrame:
        items = decode_file(path, list[VgObjectImage])

        def build(chunk: Sequence[VgObjectImage], start: int) -> pl.DataFrame:
            objs = [o for im in chunk for o in im.objects]
            return pl.DataFrame(
                {
                    "_rec": _rec_column(chunk, start, "objects"),
                    "vg_id": [im.image_id for im in chunk for _ in im.objects],
                    "object_id": [o.object_id for o in objs],
                    "x": [o.x for o in objs],
                    "y": [o.y for o in objs],
                    "w": [o.w for o in objs],
                    "h": [o.h for o in objs],
                    "name": pl.Series(utf8([o.names[0] if o.names else o.name for o in objs]), dtype=pl.Utf8),
                },
                schema_overrides={
                    "_rec": pl.Int64,
                    "vg_id": pl.Int64,
                    "object_id": pl.Int64,
                    "x": pl.Float64,
                    "y": pl.Float64,
                    "w": pl.Float64,
                    "h": pl.Float64,
                },
            )

        raw = _chunked(items, build)
        del items
        nameless = raw.with_columns(pl.int_range(pl.len()).over("_rec").alias("_sub")).filter(
            pl.col("name").is_null()
        )
        if nameless.height:
            row = nameless.row(0, named=True)
            raise InputError(
                path, "object has no name", record=f"[{row['_rec']}].objects[{row['_sub']}]", field="names"
            )
        return self._attach(raw, images, path, "objects").select(
            "image_key",
            pl.lit(self.name).alias("source"),
            pl.lit("all").alias("split"),
            pl.lit("object").alias("kind"),
            pl.col("object_id").cast(pl.Utf8).alias("source_id"),
            strip_expr("name").alias("text"),
            bbox_expr("x", "y", "w", "h", "width", "height").alias("bbox"),
        )
