"""Table schemas are derived from the pydantic models (unimm.tables): one fact, one place."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.merge_helpers import write_ingest
from unimm.merge import MergeConfig, merge, merged_parts
from unimm.schema import (
    Annotation,
    Chat,
    GenerationFailure,
    GeneratorInfo,
    ImageRef,
    Reject,
    Turn,
)
from unimm.tables import (
    ANNOTATION_SCHEMA,
    CHAT_SCHEMA,
    FAILURE_SCHEMA,
    IMAGE_REF_SCHEMA,
    MERGED_IMAGE_SCHEMA,
    NULLABLE_LISTS,
    REJECT_SCHEMA,
    failures_to_frame,
    frame_to_chats,
    frame_to_rejects,
    rejects_to_frame,
)

KEY = "coco_000000000009"


def test_columns_are_the_model_fields_with_their_narrowed_dtypes() -> None:
    assert list(ANNOTATION_SCHEMA) == list(Annotation.model_fields)
    assert list(IMAGE_REF_SCHEMA) == list(ImageRef.model_fields)
    assert list(FAILURE_SCHEMA) == list(GenerationFailure.model_fields)
    assert (
        ANNOTATION_SCHEMA["bbox"] == pl.List(pl.Float32) and ANNOTATION_SCHEMA["correct_choice"] == pl.Int32
    )
    assert ANNOTATION_SCHEMA["answers"] == pl.List(
        pl.Struct({"text": pl.Utf8, "raw": pl.Utf8, "confidence": pl.Utf8})
    )
    assert (IMAGE_REF_SCHEMA["width"], IMAGE_REF_SCHEMA["height"]) == (pl.Int32, pl.Int32)
    assert (IMAGE_REF_SCHEMA["coco_id"], IMAGE_REF_SCHEMA["vg_id"]) == (pl.Int64, pl.Int64)
    assert FAILURE_SCHEMA["attempts"] == pl.Int64
    assert REJECT_SCHEMA["chat"] == pl.Struct(CHAT_SCHEMA)
    assert set(NULLABLE_LISTS) == {"bbox"}  # the one optional list: absent means unknown, not empty


def _chat() -> Chat:
    gen = GeneratorInfo(
        backend="template", model="m", prompt_version="1", prompt_fingerprint="f", request_id="r"
    )
    turns = [Turn(role="user", content="What is it?"), Turn(role="assistant", content="A dog.")]
    return Chat(id=KEY, image_key=KEY, turns=turns, sources=["coco"], generator=gen)


def test_rows_round_trip_through_the_derived_schemas(tmp_path: Path) -> None:
    chat = _chat()
    reject = Reject(id=chat.id, image_key=chat.image_key, stage="filter", reasons=["refusal"], chat=chat)
    rejects_to_frame([reject]).write_parquet(tmp_path / "r.parquet")
    assert frame_to_rejects(pl.read_parquet(tmp_path / "r.parquet")) == [reject]
    assert frame_to_chats(pl.DataFrame([chat.model_dump()], schema=CHAT_SCHEMA)) == [chat]
    failure = GenerationFailure(
        image_key=KEY, request_id="r", backend="openai", model="m", reason="timeout", attempts=3
    )
    df = failures_to_frame([failure])
    assert df.schema == FAILURE_SCHEMA
    assert GenerationFailure.model_validate(df.row(0, named=True)) == failure
    assert failures_to_frame([]).schema == FAILURE_SCHEMA and rejects_to_frame([]).height == 0


def _unordered(dtype: pl.DataType) -> object:
    """A dtype with struct fields compared as a set (merge builds structs in its own field order)."""
    if isinstance(dtype, pl.Struct):
        return frozenset((f.name, _unordered(f.dtype)) for f in dtype.fields)
    if isinstance(dtype, pl.List):
        return ("list", _unordered(dtype.inner))
    return dtype


def test_merged_partitions_have_the_merged_image_schema(tmp_path: Path) -> None:
    ann = [
        Annotation(image_key=KEY, source="coco", split="train2014", kind="caption", source_id="1", text="A dog."),
        Annotation(
            image_key=KEY, source="coco", split="train2014", kind="object", source_id="2", text="dog",
            bbox=[0.1, 0.1, 0.5, 0.5], iscrowd=False,
        ),
    ]  # fmt: skip
    img = [
        ImageRef(
            image_key=KEY,
            source="coco",
            split="train2014",
            source_image_id="9",
            width=64,
            height=48,
            coco_id=9,
        )
    ]
    write_ingest(tmp_path, "coco", ann, img)
    merge(tmp_path, MergeConfig())
    got = pl.read_parquet_schema(merged_parts(tmp_path)[0])
    assert list(got) == list(MERGED_IMAGE_SCHEMA)
    assert {n: _unordered(t) for n, t in got.items()} == {
        n: _unordered(t) for n, t in MERGED_IMAGE_SCHEMA.items()
    }
