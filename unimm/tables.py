"""Polars schemas of the Parquet tables that mirror the pydantic models in unimm.schema.

Ingesters build columns straight into these dtypes (no per-row pydantic objects at full scale);
tests validate sample rows back through the pydantic models, so the two cannot drift apart.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import polars as pl
from pydantic import BaseModel

from unimm.schema import GroundingReport

ANSWER_DTYPE = pl.Struct({"text": pl.Utf8, "raw": pl.Utf8, "confidence": pl.Utf8})

ANNOTATION_SCHEMA = pl.Schema(
    {
        "image_key": pl.Utf8,
        "source": pl.Utf8,
        "split": pl.Utf8,
        "kind": pl.Utf8,
        "source_id": pl.Utf8,
        "parent_id": pl.Utf8,
        "text": pl.Utf8,
        "answer": pl.Utf8,
        "answers": pl.List(ANSWER_DTYPE),
        "choices": pl.List(pl.Utf8),
        "correct_choice": pl.Int32,
        "question_type": pl.Utf8,
        "answer_type": pl.Utf8,
        "bbox": pl.List(pl.Float32),
        "iscrowd": pl.Boolean,
        "names": pl.List(pl.Utf8),
        "synsets": pl.List(pl.Utf8),
        "attributes": pl.List(pl.Utf8),
        "difficult": pl.Boolean,
    }
)

IMAGE_REF_SCHEMA = pl.Schema(
    {
        "image_key": pl.Utf8,
        "source": pl.Utf8,
        "split": pl.Utf8,
        "source_image_id": pl.Utf8,
        "file_name": pl.Utf8,
        "width": pl.Int32,
        "height": pl.Int32,
        "coco_id": pl.Int64,
        "vg_id": pl.Int64,
    }
)


# List columns whose absence means "no value" (null), not "no items" ([]).
NULLABLE_LISTS = frozenset({"bbox"})


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


def polars_dtype(annotation: Any) -> pl.DataType:
    """The polars dtype of a pydantic field annotation (str, int, float, bool, Literal, Optional,
    list, nested model), so nested tables are derived from unimm.schema instead of restated."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return polars_dtype(inner)
    if origin is Literal:
        return pl.Utf8()
    if origin is list:
        return pl.List(polars_dtype(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pl.Struct({n: polars_dtype(f.annotation) for n, f in annotation.model_fields.items()})
    scalar = {str: pl.Utf8(), int: pl.Int64(), float: pl.Float64(), bool: pl.Boolean()}
    if annotation in scalar:
        return scalar[annotation]
    raise TypeError(f"no polars dtype for {annotation!r}")


# Chat rows (generation output, filter input): nested columns mirror unimm.schema.Chat exactly.
CHAT_SCHEMA = pl.Schema(
    {
        "id": pl.Utf8,
        "image_key": pl.Utf8,
        "image_file": pl.Utf8,
        "turns": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8})),
        "sources": pl.List(pl.Utf8),
        "generator": pl.Struct(
            {
                "backend": pl.Utf8,
                "model": pl.Utf8,
                "prompt_version": pl.Utf8,
                "prompt_fingerprint": pl.Utf8,
                "request_id": pl.Utf8,
            }
        ),
        "grounding_score": pl.Float64,
        "grounding": polars_dtype(GroundingReport),
    }
)


def chats_to_frame(chats: list) -> pl.DataFrame:
    """unimm.schema.Chat objects -> a DataFrame with CHAT_SCHEMA (empty list gives an empty frame)."""
    return pl.DataFrame([c.model_dump() for c in chats], schema=CHAT_SCHEMA)


def frame_to_chats(df: pl.DataFrame) -> list:
    """A CHAT_SCHEMA DataFrame -> validated unimm.schema.Chat objects."""
    from unimm.schema import Chat

    return [Chat.model_validate(row) for row in df.select(list(CHAT_SCHEMA)).iter_rows(named=True)]
