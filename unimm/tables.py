"""Polars schemas of the Parquet tables, derived from the pydantic models in unimm.schema.

Each table schema is `table_schema(Model)`: one column per field, in field order, its dtype from
the field's annotation (`polars_dtype`); where a column is narrower than the Python type implies
(Int32 sizes, Float32 boxes) the model says so (`schema.Int32`, `schema.Float32`), so no table
restates a model. Ingesters build columns straight into these dtypes (no per-row pydantic objects
at full scale); tests validate sample rows back through the pydantic models.
"""

from __future__ import annotations

import io
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import polars as pl
from pydantic import BaseModel, TypeAdapter

from unimm.gcpolicy import bulk_parse
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH
from unimm.schema import (
    Annotation,
    Answer,
    Chat,
    ColumnDtype,
    GenerationFailure,
    ImageRef,
    MergedImage,
    Reject,
)


def polars_dtype(annotation: Any) -> pl.DataType:
    """The polars dtype of a pydantic field annotation: str, int, float, bool, Literal, Optional,
    list, a nested model (a struct), or `Annotated[..., ColumnDtype(name)]` (that dtype)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        marks = [m for m in annotation.__metadata__ if isinstance(m, ColumnDtype)]
        return getattr(pl, marks[-1].name)() if marks else polars_dtype(args[0])
    if origin in (Union, UnionType):
        (inner,) = [a for a in args if a is not NoneType]
        return polars_dtype(inner)
    if origin is Literal:
        return pl.Utf8()
    if origin is list:
        return pl.List(polars_dtype(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pl.Struct(table_schema(annotation))
    scalar = {str: pl.Utf8(), int: pl.Int64(), float: pl.Float64(), bool: pl.Boolean()}
    if annotation in scalar:
        return scalar[annotation]
    raise TypeError(f"no polars dtype for {annotation!r}")


def table_schema(model: type[BaseModel]) -> pl.Schema:
    """One column per field of `model`, in field order (nested models become structs)."""
    return pl.Schema({name: polars_dtype(f.annotation) for name, f in model.model_fields.items()})


def _optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType) and NoneType in get_args(annotation)


ANSWER_DTYPE = polars_dtype(Answer)
ANNOTATION_SCHEMA = table_schema(Annotation)  # an ingester's rows
IMAGE_REF_SCHEMA = table_schema(ImageRef)
# work/ingest/<source>.parquet and .images.parquet: those rows plus the partition hash of their
# image, which the tables are sorted by (merge reads one partition's range of it), and for
# annotations the image's number, which merge groups them by
INGEST_ANNOTATION_SCHEMA = pl.Schema(
    {**ANNOTATION_SCHEMA, PARTITION_HASH: pl.UInt32(), IMAGE_NUMBER: pl.Int64()}
)
INGEST_IMAGE_SCHEMA = pl.Schema({**IMAGE_REF_SCHEMA, PARTITION_HASH: pl.UInt32()})
MERGED_IMAGE_SCHEMA = table_schema(MergedImage)  # work/merged/part-*.parquet
CHAT_SCHEMA = table_schema(Chat)  # chats: generation output, filter input
REJECT_SCHEMA = table_schema(Reject)  # rejects/<step>/<unit>.parquet
FAILURE_SCHEMA = table_schema(GenerationFailure)  # failures.parquet of generate

# List columns whose absence means "no value" (null), not "no items" ([]): the optional lists.
NULLABLE_LISTS = frozenset(
    name
    for model in (Annotation, ImageRef)
    for name, f in model.model_fields.items()
    if _optional(f.annotation) and isinstance(polars_dtype(f.annotation), pl.List)
)


def conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Add missing columns as nulls/empty lists, cast to the schema's dtypes, order columns."""
    exprs = []
    for name, dtype in schema.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype))
        elif isinstance(dtype, pl.List) and name not in NULLABLE_LISTS:
            exprs.append(pl.lit([], dtype=dtype).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(exprs)


def _models_to_frame(adapter: TypeAdapter, items: list, schema: pl.Schema) -> pl.DataFrame:
    # One JSON document serialised by pydantic-core and parsed by polars: a third of the time of
    # a Python dict per row.
    if not items:
        return pl.DataFrame(schema=schema)
    return pl.read_json(io.BytesIO(adapter.dump_json(items)), schema=schema)


_CHATS = TypeAdapter(list[Chat])
_REJECTS = TypeAdapter(list[Reject])


def chats_to_frame(chats: list[Chat]) -> pl.DataFrame:
    """unimm.schema.Chat objects -> a CHAT_SCHEMA frame (empty list gives an empty frame)."""
    return _models_to_frame(_CHATS, chats, CHAT_SCHEMA)


def frame_to_chats(df: pl.DataFrame) -> list[Chat]:
    """A CHAT_SCHEMA frame -> validated unimm.schema.Chat objects."""
    with bulk_parse():
        return [Chat.model_validate(row) for row in df.select(list(CHAT_SCHEMA)).iter_rows(named=True)]


def rejects_to_frame(rejects: list[Reject]) -> pl.DataFrame:
    """unimm.schema.Reject objects -> a REJECT_SCHEMA frame (empty list gives an empty frame)."""
    return _models_to_frame(_REJECTS, rejects, REJECT_SCHEMA)


def frame_to_rejects(df: pl.DataFrame) -> list[Reject]:
    """A REJECT_SCHEMA frame -> validated unimm.schema.Reject objects."""
    with bulk_parse():
        return [Reject.model_validate(row) for row in df.select(list(REJECT_SCHEMA)).iter_rows(named=True)]


def failures_to_frame(failures: list[GenerationFailure]) -> pl.DataFrame:
    """unimm.schema.GenerationFailure objects -> a FAILURE_SCHEMA frame (empty list: empty frame)."""
    return pl.DataFrame([f.model_dump() for f in failures], schema=FAILURE_SCHEMA)
