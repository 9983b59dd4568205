"""The msgspec twins of the record models: same records, same JSON, same checks as pydantic."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl
import pytest
from pydantic import BaseModel, TypeAdapter, field_validator

from unimm.errors import InputError
from unimm.ingest import run_ingest
from unimm.merge import MergeConfig, merge, merged_parts, read_partition
from unimm.schema import MergedCaption, MergedImage
from unimm.structs import error_location, list_decoder, record_json, struct_type

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "data"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every source of the real-format fixtures (every annotation kind), merged by unimm."""
    work = tmp_path_factory.mktemp("structs") / "work"
    run_ingest(FIXTURES, work, ["coco", "vqav2", "okvqa", "aokvqa", "vg", "visdial"], jobs=1)
    merge(work, MergeConfig())
    return merged_parts(work)


def test_twins_hold_what_pydantic_validates(parts: list[Path]) -> None:
    """Every merged record read as a twin equals pydantic's validation of the same row, field by
    field, and gives the same JSON bytes (the template request id hashes them)."""
    models = TypeAdapter(list[MergedImage])
    seen_kinds: set[str] = set()
    for part in parts:
        twins = read_partition(part)
        reference = models.validate_json(pl.read_parquet(part).write_json())
        assert [type(t).__module__ for t in twins[:1]] == ["unimm.structs"]
        assert [msgspec.to_builtins(t) for t in twins] == [r.model_dump(mode="json") for r in reference]
        assert [record_json(t) for t in twins] == [record_json(r) for r in reference]
        assert [t.kinds for t in twins] == [r.kinds for r in reference]  # the model's property
        seen_kinds.update(k for r in reference for k in r.kinds)
    assert seen_kinds == {"caption", "qa", "rationale", "region", "object", "dialog"}


def test_twin_keeps_the_models_checks() -> None:
    caption = struct_type(MergedCaption)
    decode = list_decoder(MergedCaption).decode
    assert decode(b'[{"sources": ["coco"], "source_ids": ["1"], "text": "a dog"}]') == [
        caption(sources=["coco"], source_ids=["1"], text="a dog")
    ]
    for bad, field, says in [
        (b'[{"sources": [], "source_ids": ["1"], "text": "a"}]', "sources", "length >= 1"),
        (b'[{"sources": ["flickr"], "source_ids": ["1"], "text": "a"}]', "sources.0", "Invalid enum value"),
        (b'[{"sources": ["coco"], "source_ids": ["1"]}]', None, "missing required field `text`"),
        (b'[{"sources": ["coco"], "source_ids": ["1"], "text": "a", "extra": 1}]', None, "unknown field"),
    ]:
        with pytest.raises(msgspec.ValidationError) as e:
            decode(bad)
        index, where, message = error_location(e.value)
        assert (index, where) == (0, field) and says in message


def test_a_model_with_validators_has_no_twin() -> None:
    class Checked(BaseModel):
        x: int

        @field_validator("x")
        @classmethod
        def _positive(cls, v: int) -> int:
            return v

    with pytest.raises(TypeError, match="custom validators"):
        struct_type(Checked)


def test_bad_merged_row_names_partition_record_and_field(parts: list[Path], tmp_path: Path) -> None:
    df = pl.read_parquet(parts[0])
    broken = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit(None))
        .otherwise(pl.col("image_key"))
        .alias("image_key")
    )
    path = tmp_path / "part-00000.parquet"
    broken.write_parquet(path)
    with pytest.raises(InputError) as e:
        read_partition(path)
    assert (e.value.file, e.value.record, e.value.field) == (str(path), 1, "image_key")
