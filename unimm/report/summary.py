"""The corpus summary: distributions and counts computed with polars expressions over the
dialogue and message frames (no Python loops over rows)."""

from __future__ import annotations

import math

import polars as pl
from pydantic import BaseModel, Field

from unimm.report.frames import Corpus, turn_frame, with_dialogue_columns
from unimm.report.manifest import ManifestInfo


class Bin(BaseModel):
    """One histogram bar: values in [lo, hi) (integers: lo..hi inclusive), and how many."""

    label: str
    lo: float
    hi: float
    count: int


class Distribution(BaseModel):
    """Summary statistics and a histogram of one measure."""

    n: int = 0
    missing: int = 0
    mean: float | None = None
    median: float | None = None
    min: float | None = None
    max: float | None = None
    p90: float | None = None
    bins: list[Bin] = Field(default_factory=list)


class Count(BaseModel):
    label: str
    count: int


class GeneratorCount(BaseModel):
    backend: str | None
    model: str | None
    prompt_version: str | None
    prompt_fingerprint: str | None
    dialogues: int


class Summary(BaseModel):
    """Everything `unimm stats` prints (and `--json` emits)."""

    shard_dir: str
    shards: int
    shard_bytes: int
    dialogues: int
    with_image: int
    turns: int = Field(description="Question/answer exchanges (user messages) over all dialogues.")
    turns_per_dialogue: Distribution
    question_words: Distribution
    answer_words: Distribution
    sources_per_dialogue: list[Count]
    by_source: list[Count] = Field(description="Dialogues whose image is annotated by each source.")
    combinations: list[Count]
    grounding: Distribution
    generators: list[GeneratorCount]
    manifest: ManifestInfo | None = None
    dup_rate: float | None = Field(None, description="Dedup rejects / dialogues in (from the manifest).")


def _stats(s: pl.Series) -> dict:
    vals = s.drop_nulls()
    out = {"n": vals.len(), "missing": s.null_count()}
    if vals.len():
        row = (
            vals.to_frame("x")
            .select(
                pl.col("x").mean().alias("mean"),
                pl.col("x").median().alias("median"),
                pl.col("x").min().cast(pl.Float64).alias("min"),
                pl.col("x").max().cast(pl.Float64).alias("max"),
                pl.col("x").quantile(0.9, "nearest").cast(pl.Float64).alias("p90"),
            )
            .row(0, named=True)
        )
        out.update(row)
    return out


def int_distribution(s: pl.Series, max_bins: int = 20) -> Distribution:
    """Stats of an integer measure, histogram with integer-aligned bins (one per value when the
    range is small, otherwise at most `max_bins` equal-width bins)."""
    d = Distribution(**_stats(s))
    if not d.n:
        return d
    lo, hi = int(d.min), int(d.max)  # type: ignore[arg-type]
    width = max(1, math.ceil((hi - lo + 1) / max_bins))
    counts = (
        s.drop_nulls()
        .to_frame("x")
        .group_by(((pl.col("x") - lo) // width * width + lo).alias("lo"))
        .len("count")
    )
    starts = pl.DataFrame({"lo": pl.int_range(lo, hi + 1, width, eager=True)})
    full = starts.join(counts, on="lo", how="left").with_columns(pl.col("count").fill_null(0)).sort("lo")
    d.bins = [
        Bin(label=str(a) if width == 1 else f"{a}-{a + width - 1}", lo=a, hi=a + width - 1, count=c)
        for a, c in full.iter_rows()
    ]
    return d


def float_distribution(s: pl.Series, lo: float = 0.0, hi: float = 1.0, bins: int = 10) -> Distribution:
    """Stats of a real-valued measure, histogram of `bins` equal bins over [lo, hi] (the last bin
    includes hi; values outside are clipped into the end bins)."""
    d = Distribution(**_stats(s))
    if not d.n:
        return d
    width = (hi - lo) / bins
    counts = (
        s.drop_nulls()
        .to_frame("x")
        .group_by(((pl.col("x") - lo) / width).floor().cast(pl.Int64).clip(0, bins - 1).alias("i"))
        .len("count")
    )
    full = (
        pl.DataFrame({"i": pl.int_range(0, bins, eager=True)})
        .join(counts, on="i", how="left")
        .with_columns(pl.col("count").fill_null(0))
        .sort("i")
    )
    d.bins = [
        Bin(
            label=f"{lo + i * width:.2f}-{lo + (i + 1) * width:.2f}",
            lo=lo + i * width,
            hi=lo + (i + 1) * width,
            count=c,
        )
        for i, c in full.iter_rows()
    ]
    return d


def _counts(df: pl.DataFrame, col: str, sort_by_label: bool = False) -> list[Count]:
    vc = df.group_by(col).len("count")
    vc = vc.sort(col) if sort_by_label else vc.sort(["count", col], descending=[True, False])
    return [Count(label=str(k), count=n) for k, n in vc.iter_rows()]


def summarize(corpus: Corpus) -> Summary:
    """Compute the summary of a loaded corpus."""
    df = with_dialogue_columns(corpus.dialogues)
    turns = turn_frame(corpus.dialogues)
    words = turns.group_by("role").agg(pl.col("words"))
    by_role = {r: pl.Series(w, dtype=pl.Int64) for r, w in words.iter_rows()}
    gens = (
        df.select(pl.col("generator").struct.unnest())
        .group_by("backend", "model", "prompt_version", "prompt_fingerprint")
        .len("dialogues")
        .sort("dialogues", descending=True)
    )
    m = corpus.manifest
    return Summary(
        shard_dir=str(corpus.shard_dir),
        shards=len(corpus.shards),
        shard_bytes=sum(p.stat().st_size for p in corpus.shards),
        dialogues=df.height,
        with_image=df.select(pl.col("image_ext").is_not_null().sum()).item(),
        turns=int(df["n_turns"].sum()),
        turns_per_dialogue=int_distribution(df["n_turns"]),
        question_words=int_distribution(by_role.get("user", pl.Series([], dtype=pl.Int64))),
        answer_words=int_distribution(by_role.get("assistant", pl.Series([], dtype=pl.Int64))),
        sources_per_dialogue=_counts(df, "n_sources", sort_by_label=True),
        by_source=_counts(df.select(pl.col("sources").explode()).drop_nulls(), "sources"),
        combinations=_counts(df, "combination"),
        grounding=float_distribution(df["grounding_score"]),
        generators=[GeneratorCount(**r) for r in gens.iter_rows(named=True)],
        manifest=m,
        dup_rate=m.dup_rate if m else None,
    )
