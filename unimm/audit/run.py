"""`run_audit`: read a corpus, build the annotation evidence (ingest + merge of the data root),
ground every dialogue with `unimm.grounding.ground_turns`, and write verdicts.parquet,
summary.json and report.html into one output folder that appears complete or not at all."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import BaseModel, Field

from unimm.audit.readers import AuditDialogue, read_corpus
from unimm.errors import ConfigError, InputError
from unimm.filter.config import FilterConfig
from unimm.filter.reasons import reason_code
from unimm.grounding import GroundingOutcome, ground_turns, image_evidence
from unimm.ingest import present_sources
from unimm.merge import load_merged, merged_parts
from unimm.schema import GroundingReport, JudgeVerdict, MergedImage
from unimm.sources import SOURCE_FOLDERS, parse_sources
from unimm.tables import polars_dtype
from unimm.workdir import atomic_dir

DEFAULT_MAX_UNANNOTATED = 0.1
UNANNOTATED_EXAMPLES = 5

# The verdict table: a few identifying columns plus the GroundingReport struct, whose fields are
# then lifted into flat columns (the struct dtype is derived from the pydantic model, never restated).
GROUNDING_DTYPE = polars_dtype(GroundingReport)
_BASE_SCHEMA = pl.Schema(
    {
        "id": pl.Utf8,
        "image_key": pl.Utf8,
        "image_file": pl.Utf8,
        "format": pl.Utf8,
        "n_turns": pl.Int64,
        "annotated": pl.Boolean,
        "reasons": pl.List(pl.Utf8),
        "grounding": GROUNDING_DTYPE,
    }
)
_LIFTED = (
    "score",
    "coverage",
    "checks",
    "passed",
    "chair_i",
    "chair_s",
    "mentioned",
    "hallucinated",
    "turns",
)

Judge = Callable[[list[AuditDialogue], dict[str, MergedImage]], dict[str, list[JudgeVerdict]]]


class AuditOptions(BaseModel):
    """What `unimm audit` was asked to do."""

    corpus: Path
    data_root: Path
    out: Path
    format: str | None = None
    work: Path | None = Field(
        None, description="Keep ingest/merge outputs here; default: a temp dir, removed."
    )
    sources: list[str] | None = Field(None, description="Default: every source present under data_root.")
    max_unannotated: float = Field(
        DEFAULT_MAX_UNANNOTATED,
        ge=0,
        le=1,
        description="Largest share of dialogues whose image the annotations lack before the audit "
        "refuses (a wrong --data-root or --sources, not a corpus finding).",
    )
    examples: int = Field(12, ge=0, description="Worst dialogues shown in report.html.")
    jobs: int = Field(1, ge=1)


class UnannotatedImage(BaseModel):
    id: str
    image_file: str | None
    image_key: str


class AuditSummary(BaseModel):
    """summary.json: corpus-level grounding figures."""

    corpus: str
    format: str
    data_root: str
    sources: list[str]
    dialogues: int
    annotated: int = Field(description="Dialogues whose image has annotations under the data root.")
    unannotated: int
    unannotated_examples: list[UnannotatedImage]
    with_mentions: int = Field(description="Dialogues that assert at least one decidable object.")
    mentioned: int
    hallucinated: int
    chair_i: float | None = Field(description="Sum hallucinated / sum mentioned over the corpus.")
    chair_s: float | None = Field(
        description="Share of dialogues with any hallucination among those with mentions."
    )
    mean_coverage: float | None
    mean_score: float | None
    would_reject: int
    would_reject_share: float | None
    reasons_by_code: dict[str, int] = Field(
        description="Dialogues per reason code (one dialogue counts once per code)."
    )
    judge: bool = False


@dataclass
class AuditResult:
    summary: AuditSummary
    verdicts: pl.DataFrame
    dialogues: list[AuditDialogue]
    merged: dict[str, MergedImage]


# ------------------------------------------------------------------------------------------------
# evidence
# ------------------------------------------------------------------------------------------------
def evidence_sources(data_root: Path, sources: list[str] | None) -> list[str]:
    """The sources to ingest: those asked for, else every one present under the data root."""
    names = parse_sources(sources) if sources else present_sources(data_root)
    if not names:
        raise ConfigError(
            f"no source folders under {data_root} (expected one of {SOURCE_FOLDERS}); "
            "pass --data-root or --sources"
        )
    return names


def build_evidence(
    data_root: Path, work: Path, sources: list[str], keys: set[str], jobs: int = 1
) -> dict[str, MergedImage]:
    """Ingest + merge `sources` of the data root into `work` (the pipeline's own steps, cached
    like a build's); the merged records of `keys`."""
    from unimm.config import PipelineConfig
    from unimm.pipeline.runner import run_pipeline

    cfg = PipelineConfig(sources=sources, data_root=Path(data_root))
    cfg.executor.workers = jobs
    run_pipeline(cfg, work, until="merge", log=lambda _: None)
    return load_merged(merged_parts(work), keys)


def check_unannotated(
    corpus: Path, dialogues: list[AuditDialogue], merged: dict[str, MergedImage], max_share: float
) -> list[UnannotatedImage]:
    """Dialogues whose image the annotations lack; InputError when all of them, or more than
    `max_share`, are: that means the wrong data root or sources, and an audit would mean nothing."""
    missing = [
        (i, UnannotatedImage(id=d.id, image_file=d.image_file, image_key=d.image_key))
        for i, d in enumerate(dialogues)
        if d.image_key not in merged
    ]
    n, total = len(missing), len(dialogues)
    if n and (n == total or n / total > max_share):
        shown = ", ".join(
            f"record {i} ({m.image_file or m.id} -> {m.image_key})" for i, m in missing[:UNANNOTATED_EXAMPLES]
        )
        raise InputError(
            corpus,
            f"{n} of {total} dialogues ({n / total:.0%}) name images absent from the annotations "
            f"(allowed: {max_share:.0%}, --max-unannotated), e.g. {shown}; check --data-root and --sources",
            record=missing[0][0],
            field="image",
        )
    return [m for _, m in missing]


# ------------------------------------------------------------------------------------------------
# grounding
# ------------------------------------------------------------------------------------------------
def ground_all(
    dialogues: list[AuditDialogue],
    merged: dict[str, MergedImage],
    cfg: FilterConfig,
    verdicts: dict[str, list[JudgeVerdict]] | None = None,
) -> list[GroundingOutcome]:
    """`ground_turns` for every dialogue (no annotations: merged None, only the judge applies).
    Each image's evidence is built once: LLaVA-Instruct has several dialogues per image."""
    verdicts = verdicts or {}
    evidence = {k: image_evidence(m, cfg) for k, m in merged.items()}
    return [
        ground_turns(
            d.turns, merged.get(d.image_key), cfg, verdicts.get(d.id), evidence=evidence.get(d.image_key)
        )
        for d in dialogues
    ]


def verdict_frame(
    dialogues: list[AuditDialogue], outcomes: list[GroundingOutcome], merged: dict[str, MergedImage]
) -> pl.DataFrame:
    """One row per dialogue: ids, the GroundingReport's figures as flat columns, the nested turns,
    the reject reasons and whether they would reject it."""
    rows = [
        {
            "id": d.id,
            "image_key": d.image_key,
            "image_file": d.image_file,
            "format": d.format,
            "n_turns": len(d.turns),
            "annotated": d.image_key in merged,
            "reasons": o.reasons,
            "grounding": o.report.model_dump(),
        }
        for d, o in zip(dialogues, outcomes, strict=True)
    ]
    df = pl.DataFrame(rows, schema=_BASE_SCHEMA)
    g = pl.col("grounding")
    return df.select(
        "id",
        "image_key",
        "image_file",
        "format",
        "n_turns",
        "annotated",
        *(g.struct.field(f).alias(f) for f in _LIFTED),
        "reasons",
        (pl.col("reasons").list.len() > 0).alias("would_reject"),
    )


def summarize(
    v: pl.DataFrame,
    opts: AuditOptions,
    fmt: str,
    sources: list[str],
    unannotated: list[UnannotatedImage],
    judge: bool,
) -> AuditSummary:
    """Corpus CHAIR-i/CHAIR-s, coverage, rejects and reason counts from the verdict table."""
    agg = v.select(
        pl.len().alias("dialogues"),
        pl.col("annotated").sum().alias("annotated"),
        (pl.col("mentioned") > 0).sum().alias("with_mentions"),
        pl.col("mentioned").sum().alias("mentioned"),
        pl.col("hallucinated").sum().alias("hallucinated"),
        pl.col("hallucinated").filter(pl.col("mentioned") > 0).gt(0).mean().alias("chair_s"),
        pl.col("coverage").mean().alias("mean_coverage"),
        pl.col("score").mean().alias("mean_score"),
        pl.col("would_reject").sum().alias("would_reject"),
        pl.col("would_reject").mean().alias("would_reject_share"),
    ).row(0, named=True)
    codes: Counter[str] = Counter()
    for reasons in v["reasons"].to_list():
        codes.update({reason_code(r) for r in reasons})  # a dialogue counts once per code
    return AuditSummary(
        corpus=str(opts.corpus),
        format=fmt,
        data_root=str(opts.data_root),
        sources=sources,
        unannotated=len(unannotated),
        unannotated_examples=unannotated[:UNANNOTATED_EXAMPLES],
        chair_i=agg["hallucinated"] / agg["mentioned"] if agg["mentioned"] else None,
        reasons_by_code=dict(sorted(codes.items())),
        judge=judge,
        **agg,
    )


# ------------------------------------------------------------------------------------------------
# the whole audit
# ------------------------------------------------------------------------------------------------
def run_audit(
    opts: AuditOptions,
    cfg: FilterConfig,
    judge: Judge | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> AuditResult:
    """Audit `opts.corpus` against the annotations of `opts.data_root`; writes opts.out atomically
    (verdicts.parquet, summary.json, report.html). Bad input raises before anything is written."""
    from unimm.audit.report import write_report  # matplotlib: imported only for a real run

    fmt, dialogues = read_corpus(opts.corpus, opts.format)
    log(f"read {len(dialogues):,} dialogues ({fmt}) from {opts.corpus}")
    sources = evidence_sources(opts.data_root, opts.sources)
    out = Path(opts.out)
    with atomic_dir(out) as staging:
        work = Path(opts.work) if opts.work else staging / "work"
        log(f"ingest + merge {','.join(sources)} from {opts.data_root}")
        merged = build_evidence(opts.data_root, work, sources, {d.image_key for d in dialogues}, opts.jobs)
        unannotated = check_unannotated(opts.corpus, dialogues, merged, opts.max_unannotated)
        verdicts = judge(dialogues, merged) if judge is not None else None
        outcomes = ground_all(dialogues, merged, cfg, verdicts)
        frame = verdict_frame(dialogues, outcomes, merged)
        summary = summarize(frame, opts, fmt, sources, unannotated, judge is not None)
        if opts.work is None:
            shutil.rmtree(work, ignore_errors=True)  # scratch evidence never lands in the output
        frame.write_parquet(staging / "verdicts.parquet", compression="zstd", statistics=True)
        (staging / "summary.json").write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
        write_report(staging / "report.html", summary, frame, dialogues, merged, opts)
    return AuditResult(summary, frame, dialogues, merged)
