"""The corpus summary: distributions and counts computed with polars expressions over the
dialogue and message frames (no Python loops over rows)."""

from __future__ import annotations

import math

import polars as pl
from pydantic import BaseModel, Field

from unimm.filter.reasons import reason_code
from unimm.grounding.reasons import GROUNDING_REASON_CODES
from unimm.report.frames import Corpus, grounding_turn_frame, turn_frame, with_dialogue_columns
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


class GroundingSummary(BaseModel):
    """Corpus figures from each dialogue's `GroundingReport` (dialogues without one are left out)."""

    dialogues: int = Field(0, description="Dialogues carrying a grounding report.")
    coverage: Distribution = Field(
        default_factory=Distribution, description="Per dialogue: share of assistant turns checked."
    )
    covered: float | None = Field(None, description="Share of reported dialogues with coverage > 0.")
    mentioned: int = Field(0, description="Objects mentioned, summed over dialogues.")
    hallucinated: int = Field(0, description="Objects hallucinated, summed over dialogues.")
    chair_i: float | None = Field(None, description="Corpus CHAIR-i: hallucinated / mentioned.")
    chair_s: float | None = Field(
        None, description="Corpus CHAIR-s: share of dialogues with a hallucination, of those mentioning any."
    )
    judge: list[Count] = Field(default_factory=list, description="Judge verdicts over assistant turns.")
    failures: list[Count] = Field(
        default_factory=list, description="Failed checks in the shipped dialogues, per reason code (turns)."
    )
    hallucinated_objects: list[Count] = Field(
        default_factory=list, description="Objects hallucinated in the shipped dialogues (turns)."
    )
    reject_reasons: list[Count] = Field(
        default_factory=list, description="Rejected dialogues per grounding reason code (manifest)."
    )


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
    grounding_report: GroundingSummary = Field(default_factory=GroundingSummary)
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


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def grounding_summary(df: pl.DataFrame, manifest: ManifestInfo | None = None) -> GroundingSummary:
    """Coverage, corpus CHAIR-i/-s, judge verdicts and failure reasons from the `grounding` column
    of a dialogue frame, plus the manifest's rejection reasons (`step: code`) whose code is a
    grounding reason code (GROUNDING_REASON_CODES)."""
    reports = df.select(pl.col("grounding").struct.unnest()).filter(pl.col("coverage").is_not_null())
    totals = reports.select(
        pl.len().alias("dialogues"),
        (pl.col("coverage") > 0).sum().alias("covered"),
        pl.col("mentioned").sum().alias("mentioned"),
        pl.col("hallucinated").sum().alias("hallucinated"),
        (pl.col("mentioned") > 0).sum().alias("with_mentions"),
        ((pl.col("mentioned") > 0) & (pl.col("hallucinated") > 0)).sum().alias("with_hallucinations"),
    ).row(0, named=True)
    turns = grounding_turn_frame(df)
    # code = text before the first ":", as reason_code() has it ("hallucinated_object:giraffe")
    failures = turns.select(pl.col("failures").explode().drop_nulls().str.split(":").list.first())
    rejects = [
        Count(label=label, count=n)
        for label, n in (manifest.rejection_reasons.items() if manifest else [])
        if reason_code(label.split(": ", 1)[-1]) in GROUNDING_REASON_CODES
    ]
    return GroundingSummary(
        dialogues=totals["dialogues"],
        coverage=float_distribution(reports["coverage"]),
        covered=_ratio(totals["covered"], totals["dialogues"]),
        mentioned=totals["mentioned"],
        hallucinated=totals["hallucinated"],
        chair_i=_ratio(totals["hallucinated"], totals["mentioned"]),
        chair_s=_ratio(totals["with_hallucinations"], totals["with_mentions"]),
        judge=_counts(turns.select("judge").drop_nulls(), "judge"),
        failures=_counts(failures, "failures"),
        hallucinated_objects=_counts(
            turns.select(pl.col("hallucinated").explode()).drop_nulls(), "hallucinated"
        ),
        reject_reasons=rejects,
    )


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
        grounding_report=grounding_summary(df, m),
        generators=[GeneratorCount(**r) for r in gens.iter_rows(named=True)],
        manifest=m,
        dup_rate=m.dup_rate if m else None,
    )
