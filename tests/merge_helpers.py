"""Build ingest tables from pydantic records, for merge tests that need exact control; read a
source's annotation tables back as one frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unimm.ingest.base import annotations_frame, images_frame
from unimm.ingest.tablefile import read_ingest_table, write_ingest_table
from unimm.merge import annotation_tables
from unimm.pipeline.layout import Layout
from unimm.schema import Annotation, ImageRef
from unimm.tables import ANNOTATION_SCHEMA, IMAGE_REF_SCHEMA, INGEST_ANNOTATION_SCHEMA


def write_ingest(work: Path, source: str, annotations: list[Annotation], images: list[ImageRef]) -> None:
    ann = pl.DataFrame([a.model_dump() for a in annotations], schema=ANNOTATION_SCHEMA)
    img = pl.DataFrame([i.model_dump() for i in images], schema=IMAGE_REF_SCHEMA)
    write_ingest_table(annotations_frame(ann), Layout(work).ingest_table(source))
    write_ingest_table(images_frame(img), Layout(work).ingest_images(source))


def source_annotations(work: Path, source: str) -> pl.DataFrame:
    """Every annotation row `source`'s ingest units wrote (its own table, then its parts')."""
    tables = annotation_tables(Layout(work), source)
    return pl.concat([read_ingest_table(t, INGEST_ANNOTATION_SCHEMA) for t in tables])
