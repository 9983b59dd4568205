"""Shards -> polars frames: one row per dialogue, one row per message; the stats are expressions
over these frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from unimm.placeholder import IMAGE_PREFIX
from unimm.report.manifest import ManifestInfo, load_manifest
from unimm.report.read import Reservoir, Sample, find_shards, iter_samples
from unimm.schema import SOURCES
from unimm.tables import CHAT_SCHEMA

DIALOGUE_SCHEMA = pl.Schema({**CHAT_SCHEMA, "shard": pl.Utf8, "image_ext": pl.Utf8, "image_bytes": pl.Int64})
_ORDER = {s: i for i, s in enumerate(SOURCES)}


@dataclass
class Corpus:
    """Everything the report reads from a shard folder."""

    shard_dir: Path
    shards: list[Path]
    dialogues: pl.DataFrame
    examples: list[Sample] = field(default_factory=list)
    manifest: ManifestInfo | None = None


def load_corpus(shard_dir: Path, examples: int = 3, seed: int = 0) -> Corpus:
    """Read every shard of `shard_dir` into a dialogue frame and keep `examples` seeded random
    samples (with their image bytes) for the report; raises UnimmError when there are no shards."""
    shard_dir = Path(shard_dir)
    shards = find_shards(shard_dir)
    manifest = load_manifest(shard_dir)
    picks: Reservoir[Sample] = Reservoir(examples, seed)
    rows: list[dict] = []
    for s in iter_samples(shards):
        row = s.chat.model_dump()
        row["shard"] = s.shard
        row["image_ext"] = s.image_ext
        row["image_bytes"] = len(s.image) if s.image is not None else None
        rows.append(row)
        picks.offer(s)
    df = pl.DataFrame(rows, schema=DIALOGUE_SCHEMA)
    return Corpus(shard_dir, shards, df, sorted(picks.items, key=lambda x: x.key), manifest)


def with_dialogue_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Add per-dialogue measures: turns (question/answer exchanges = user messages), messages,
    number of sources and the source combination label (e.g. `coco+vqav2`)."""
    return df.with_columns(
        pl.col("turns").list.eval(pl.element().struct.field("role") == "user").list.sum().alias("n_turns"),
        pl.col("turns").list.len().alias("n_messages"),
        pl.col("sources").list.len().alias("n_sources"),
        # canonical source order (unimm.schema.SOURCES) so one combination has one label
        pl.col("sources")
        .list.eval(pl.element().sort_by(pl.element().replace_strict(_ORDER, return_dtype=pl.Int32)))
        .list.join("+")
        .alias("combination"),
    )


def turn_frame(df: pl.DataFrame) -> pl.DataFrame:
    """One row per message: dialogue row index, position, role, content without the image
    placeholder, and its length in words."""
    return (
        df.select(pl.int_range(pl.len()).alias("dialogue"), "turns")
        .explode("turns")
        .drop_nulls("turns")
        .unnest("turns")
        .with_columns(
            pl.int_range(pl.len()).over("dialogue").alias("position"),
            pl.col("content").str.strip_prefix(IMAGE_PREFIX).alias("content"),
        )
        .with_columns(pl.col("content").str.count_matches(r"\S+").alias("words"))
    )


def grounding_turn_frame(df: pl.DataFrame) -> pl.DataFrame:
    """One row per assistant turn that a dialogue's grounding report covers: dialogue row index
    and the `TurnGrounding` fields (turn, checks, failures, objects, hallucinated, judge...)."""
    return (
        df.select(pl.int_range(pl.len()).alias("dialogue"), pl.col("grounding").struct.field("turns"))
        .explode("turns")
        .drop_nulls("turns")
        .unnest("turns")
    )
