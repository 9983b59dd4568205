"""`unimm build`: every stage, in order, with stage caching and resume.

    ingest (per source) -> merge -> generate (per partition) -> filter (per partition; with
        `filter.judge`, the LLM judge first) -> corpus: dedup + decontaminate (looks across
        partitions) -> shards + manifest

Each stage output is keyed by a fingerprint of its inputs and config (unimm.stagecache); markers
live in `work/markers/`. Rerunning the same build does no work; changing a filter threshold reruns
filter, corpus and shards only; a build killed anywhere resumes: finished partitions are kept,
and inside a partition the generation request cache replays every response already received.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from unimm import __version__, workdir
from unimm.config import PipelineConfig
from unimm.decontam import decontaminate
from unimm.dedup import dedup_chats
from unimm.errors import ConfigError
from unimm.filter.pipeline import judge_and_filter, judge_fingerprint_for
from unimm.filter.reasons import reason_code
from unimm.filter.tables import rejects_to_frame
from unimm.generate import generate_chats, prompt_fingerprint
from unimm.generate.prompts import prompt_set_for
from unimm.grounding.vocab import vocabulary_fingerprint
from unimm.ingest import check_inputs, run_ingest
from unimm.merge import merge, merged_parts
from unimm.schema import Chat, GenerationFailure, MergedImage, Reject
from unimm.shards.writer import write_shards_result
from unimm.sources import SOURCE_SPECS
from unimm.stagecache import StageMarker, code_fingerprint, files_fingerprint, fingerprint, is_done, mark_done
from unimm.tables import ANNOTATION_SCHEMA, chats_to_frame, frame_to_chats

STAGES = ("ingest", "merge", "generate", "filter", "corpus", "shards")


class StageReport(BaseModel):
    stage: str
    status: str  # ran | cached
    seconds: float
    counts: dict[str, int] = {}


class BuildReport(BaseModel):
    stages: list[StageReport]
    out: str | None
    dialogues: int
    rejected_by_reason: dict[str, int]


# ------------------------------------------------------------------------------------------------
# small I/O helpers for the per-partition tables
# ------------------------------------------------------------------------------------------------
def _markers(work: Path) -> Path:
    return Path(work) / "markers"


def write_rejects(rejects: list[Reject], path: Path) -> None:
    workdir.write_parquet_atomic(rejects_to_frame(rejects), path)


def read_merged(part: Path) -> list[MergedImage]:
    return [MergedImage.model_validate(r) for r in pl.read_parquet(part).iter_rows(named=True)]


def _write_failures(failures: list[GenerationFailure], path: Path) -> None:
    schema = {n: (pl.Int64 if n == "attempts" else pl.Utf8) for n in GenerationFailure.model_fields}
    workdir.write_parquet_atomic(pl.DataFrame([f.model_dump() for f in failures], schema=schema), path)


class _Runner:
    """Runs stages in order, records what ran and what came from cache."""

    def __init__(self, cfg: PipelineConfig, work: Path, log: Callable[[str], None]) -> None:
        self.cfg, self.work, self.log = cfg, Path(work), log
        self.reports: list[StageReport] = []

    def stage(
        self,
        name: str,
        fp: str,
        outputs: list[Path],
        run: Callable[[], dict[str, int]],
        marker_name: str | None = None,
    ) -> str:
        marker_name = marker_name or name
        done = is_done(_markers(self.work), marker_name, fp)
        if done is not None:
            self.reports.append(
                StageReport(stage=marker_name, status="cached", seconds=0.0, counts=done.counts)
            )
            return fp
        self.log(f"[bold]{marker_name}[/] running")
        t0 = time.perf_counter()
        counts = run()
        dt = time.perf_counter() - t0
        mark_done(
            _markers(self.work),
            StageMarker(
                stage=marker_name,
                fingerprint=fp,
                outputs=[str(o) for o in outputs],
                counts=counts,
                seconds=dt,
            ),
        )
        self.reports.append(StageReport(stage=marker_name, status="ran", seconds=round(dt, 2), counts=counts))
        return fp


def build(
    cfg: PipelineConfig,
    work: Path,
    out: Path | None,
    *,
    until: str = "shards",
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> BuildReport:
    """Run the pipeline up to `until` (inclusive); returns what ran, what was cached, and counts."""
    if until not in STAGES:
        raise ConfigError(f"--until must be one of {', '.join(STAGES)}")
    stop = STAGES.index(until)
    work = Path(work)
    r = _Runner(cfg, work, log)

    # -- ingest: one cached unit per source ---------------------------------------------------
    check_inputs(cfg.data_root, cfg.sources)
    ingest_fps: dict[str, str] = {}
    stale: list[str] = []
    for s in cfg.sources:
        files = [cfg.data_root / f.path for f in SOURCE_SPECS[s].files() if (cfg.data_root / f.path).exists()]
        # The table schema is part of the key: a unimm that ingests more fields must not reuse
        # tables written without them.
        ingest_fps[s] = fingerprint(
            "ingest", __version__, str(ANNOTATION_SCHEMA), s, files_fingerprint(files)
        )
        if is_done(_markers(work), f"ingest-{s}", ingest_fps[s]) is None:
            stale.append(s)
    if stale:
        t0 = time.perf_counter()
        log(f"[bold]ingest[/] running: {', '.join(stale)}")
        results = {
            res.source: res
            for res in run_ingest(cfg.data_root, work, stale, jobs=cfg.ingest.jobs, progress=progress)
        }
        for s in stale:
            counts = {k: int(v) for k, v in results[s].annotations.items()}
            mark_done(
                _markers(work),
                StageMarker(
                    stage=f"ingest-{s}",
                    fingerprint=ingest_fps[s],
                    counts=counts,
                    outputs=[str(workdir.ingest_table(work, s)), str(workdir.ingest_images(work, s))],
                ),
            )
        r.reports.append(
            StageReport(stage="ingest", status="ran", seconds=round(time.perf_counter() - t0, 2))
        )
    else:
        r.reports.append(StageReport(stage="ingest", status="cached", seconds=0.0))
    if stop == 0:
        return _report(r, None, 0, Counter())

    # -- merge --------------------------------------------------------------------------------
    merge_cfg = cfg.merge.model_copy(update={"sources": cfg.merge.sources or cfg.sources})
    merge_fp = fingerprint("merge", merge_cfg, [ingest_fps[s] for s in cfg.sources])

    def run_merge() -> dict[str, int]:
        s = merge(work, merge_cfg)
        return {"images": s.images_kept, "partitions": s.partitions}

    r.stage("merge", merge_fp, [workdir.merged_dir(work) / "summary.json"], run_merge)
    parts = merged_parts(work)
    if stop == 1:
        return _report(r, None, 0, Counter())

    # -- generate, then filter, per partition ---------------------------------------------------
    gen_dir, flt_dir = work / "generate", work / "filter"
    prompt_fp = prompt_fingerprint(cfg.generate)
    filter_cfg = cfg.filter
    if not filter_cfg.prompt_text and cfg.generate.backend != "template":
        # A dialogue that repeats the instructions it was given is a prompt echo: tell the filter
        # what those instructions were.
        filter_cfg = filter_cfg.model_copy(update={"prompt_text": prompt_set_for(cfg.generate).system})
    # Editing the judge prompt re-judges, so it reruns filter (the judge's cache keeps old answers).
    judge_fp = judge_fingerprint_for(filter_cfg)
    vocab_fp = vocabulary_fingerprint(filter_cfg.vocabulary)
    rules_fp = code_fingerprint("unimm.filter", "unimm.grounding")
    remaining = cfg.generate.limit
    filter_fps: list[str] = []
    for part in parts:
        pid = part.stem.removeprefix("part-")
        records = read_merged(part)
        if remaining is not None:
            records, remaining = records[:remaining], max(0, remaining - len(records))
        gen_fp = fingerprint("generate", merge_fp, part.name, cfg.generate, prompt_fp, len(records))
        chats_p, fail_p = gen_dir / f"chats-{pid}.parquet", gen_dir / f"failures-{pid}.parquet"

        def run_generate(
            records: list[MergedImage] = records, chats_p: Path = chats_p, fail_p: Path = fail_p
        ) -> dict[str, int]:
            res = generate_chats(
                records, cfg.generate.model_copy(update={"limit": None}), gen_dir / "cache", progress=progress
            )
            workdir.write_parquet_atomic(chats_to_frame(res.chats), chats_p)
            _write_failures(res.failures, fail_p)
            s = res.summary
            return {
                "records": len(records),
                "chats": len(res.chats),
                "failures": len(res.failures),
                "requests_sent": s.requests_sent,
                "cache_hits": s.cache_hits,
                "completion_tokens": s.completion_tokens,
            }

        r.stage("generate", gen_fp, [chats_p, fail_p], run_generate, marker_name=f"generate-{pid}")
        if stop == 2:
            continue

        flt_fp = fingerprint("filter", gen_fp, filter_cfg, judge_fp, vocab_fp, rules_fp)
        kept_p, rej_p = flt_dir / f"kept-{pid}.parquet", flt_dir / f"rejects-{pid}.parquet"

        def run_filter(
            part: Path = part, chats_p: Path = chats_p, kept_p: Path = kept_p, rej_p: Path = rej_p
        ) -> dict[str, int]:
            chats = frame_to_chats(pl.read_parquet(chats_p))
            merged = {m.image_key: m for m in read_merged(part)}
            res, judged = judge_and_filter(
                chats, merged, filter_cfg, cfg.generate, flt_dir / "judge-cache", progress=progress
            )
            workdir.write_parquet_atomic(chats_to_frame(res.kept), kept_p)
            write_rejects(res.rejects, rej_p)
            counts = {"in": len(chats), "kept": len(res.kept), "rejected": len(res.rejects)}
            return {**counts, **(judged.counts() if judged else {})}

        filter_fps.append(r.stage("filter", flt_fp, [kept_p, rej_p], run_filter, marker_name=f"filter-{pid}"))
    if stop <= 3:
        return _report(r, None, 0, _reasons(work))

    # -- corpus-wide: dedup + decontaminate -----------------------------------------------------
    corpus_dir = work / "corpus"
    decontam_files = [Path(p) for p in cfg.decontaminate.files()]
    corpus_fp = fingerprint(
        "corpus",
        filter_fps,
        cfg.dedup,
        cfg.decontaminate,
        files_fingerprint([p for p in decontam_files if p.exists()]),
    )
    ckept_p, crej_p = corpus_dir / "kept.parquet", corpus_dir / "rejects.parquet"

    def run_corpus() -> dict[str, int]:
        chats: list[Chat] = []
        merged: dict[str, MergedImage] = {}
        for part in parts:
            pid = part.stem.removeprefix("part-")
            chats += frame_to_chats(pl.read_parquet(flt_dir / f"kept-{pid}.parquet"))
            merged.update({m.image_key: m for m in read_merged(part)})
        d = dedup_chats(chats, cfg.dedup)
        c = decontaminate(d.kept, merged, cfg.decontaminate)
        workdir.write_parquet_atomic(chats_to_frame(c.kept), ckept_p)
        write_rejects([*d.rejects, *c.rejects], crej_p)
        return {
            "in": len(chats),
            "kept": len(c.kept),
            "dedup_rejected": len(d.rejects),
            "decontam_rejected": len(c.rejects),
        }

    r.stage("corpus", corpus_fp, [ckept_p, crej_p], run_corpus)
    if stop == 4:
        return _report(r, None, 0, _reasons(work))

    # -- shards ---------------------------------------------------------------------------------
    if out is None:
        raise ConfigError("no output folder: pass --out")
    out = Path(out)
    reasons = _reasons(work)
    shard_fp = fingerprint("shards", corpus_fp, cfg.shards, str(cfg.images.resolve()), str(out.resolve()))
    n_out = 0

    def run_shards() -> dict[str, int]:
        nonlocal n_out
        chats = frame_to_chats(pl.read_parquet(ckept_p))
        extra = {
            "config": cfg.model_dump(mode="json"),
            "build_fingerprint": shard_fp,
            "prompt_fingerprint": prompt_fp,
            "rejections_by_reason": dict(sorted(reasons.items())),
        }
        with workdir.atomic_dir(out) as tmp:
            res = write_shards_result(chats, tmp, cfg.shards, cfg.images, extra)
        write_rejects(res.rejects, shard_rej_p)
        n_out = int(res.manifest.total_samples)
        return {"samples": n_out, "shards": len(res.manifest.shards), "rejected": len(res.rejects)}

    shard_rej_p = work / "shards" / "rejects.parquet"
    r.stage("shards", shard_fp, [out / "manifest.json", shard_rej_p], run_shards)
    if n_out == 0:
        n_out = len(pl.read_parquet(ckept_p, columns=["id"]))
    return _report(r, out, n_out, _reasons(work))


def _reasons(work: Path) -> Counter:
    """Rejections by reason code over every stage so far (generation failures included)."""
    c: Counter = Counter()
    for p in sorted((work / "generate").glob("failures-*.parquet")):
        for reason in pl.read_parquet(p, columns=["reason"])["reason"].to_list():
            c[f"generation:{reason}"] += 1
    for p in [
        *sorted((work / "filter").glob("rejects-*.parquet")),
        work / "corpus" / "rejects.parquet",
        work / "shards" / "rejects.parquet",
    ]:
        if p.exists():
            for reasons in pl.read_parquet(p, columns=["reasons"])["reasons"].to_list():
                c.update(reason_code(r) for r in reasons)
    return c


def _report(r: _Runner, out: Path | None, n: int, reasons: Counter) -> BuildReport:
    return BuildReport(
        stages=r.reports,
        out=str(out) if out else None,
        dialogues=n,
        rejected_by_reason=dict(sorted(reasons.items())),
    )
