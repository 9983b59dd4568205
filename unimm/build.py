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
from typing import NamedTuple

import polars as pl
from pydantic import BaseModel

from unimm import __version__, workdir
from unimm.card import CARD_NAME
from unimm.config import PipelineConfig
from unimm.decontam import decontaminate, load_eval_file
from unimm.dedup import dedup_chats
from unimm.errors import ConfigError
from unimm.filter import FilterConfig
from unimm.filter.pipeline import judge_and_filter, judge_fingerprint_for
from unimm.filter.reasons import reason_code
from unimm.filter.tables import rejects_to_frame
from unimm.generate import generate_chats, prompt_fingerprint
from unimm.generate.dispatch import TRANSIENT_REASONS_PREFIX, is_transient
from unimm.generate.prompts import prompt_set_for, record_budget
from unimm.grounding.vocab import vocabulary_fingerprint
from unimm.ingest import check_inputs, run_ingest
from unimm.merge import image_files, load_merged, merge, merged_parts, read_partition
from unimm.schema import Chat, GenerationFailure, Reject
from unimm.shards.manifest import read_manifest
from unimm.shards.writer import write_shards_result
from unimm.sources import SOURCE_SPECS
from unimm.stagecache import StageMarker, code_fingerprint, files_fingerprint, fingerprint, is_done, mark_done
from unimm.tables import ANNOTATION_SCHEMA, chats_to_frame, frame_to_chats

STAGES = ("ingest", "merge", "generate", "filter", "corpus", "shards")


class StageReport(BaseModel):
    stage: str
    status: str  # ran | cached | incomplete
    seconds: float
    counts: dict[str, int] = {}


class BuildReport(BaseModel):
    stages: list[StageReport]
    out: str | None
    dialogues: int
    rejected_by_reason: dict[str, int]
    incomplete: str | None = None  # why the build stopped short (rerunning it retries)


# ------------------------------------------------------------------------------------------------
# small I/O helpers for the per-partition tables
# ------------------------------------------------------------------------------------------------
def _markers(work: Path) -> Path:
    return Path(work) / "markers"


def write_rejects(rejects: list[Reject], path: Path) -> None:
    workdir.write_parquet_atomic(rejects_to_frame(rejects), path)


def _rows(part: Path) -> int:
    """Row count from the Parquet footer (no data read)."""
    return int(pl.scan_parquet(part).select(pl.len()).collect().item())


def _coco_ids(parts: list[Path], keys: set[str]) -> dict[str, int]:
    """image key -> COCO id for the VG-keyed images among `keys` that know one (decontamination
    matches those against COCO evaluation images). Two columns, not whole records: at full scale
    the merged records do not fit in memory as objects."""
    df = (
        pl.scan_parquet(parts)
        .select("image_key", "coco_id")
        .filter(pl.col("coco_id").is_not_null() & pl.col("image_key").is_in(list(keys)))
        .collect()
    )
    return dict(zip(df["image_key"].to_list(), df["coco_id"].to_list(), strict=True))


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
        complete: Callable[[dict[str, int]], bool] | None = None,
    ) -> bool:
        """Run `run` unless a marker with fingerprint `fp` says it already ran; True when the stage
        is done. A run that `complete` judges unfinished keeps its outputs but gets no marker, so
        the next run of the same build does it again."""
        marker_name = marker_name or name
        done = is_done(_markers(self.work), marker_name, fp)
        if done is not None:
            self.reports.append(
                StageReport(stage=marker_name, status="cached", seconds=0.0, counts=done.counts)
            )
            return True
        self.log(f"[bold]{marker_name}[/] running")
        t0 = time.perf_counter()
        counts = run()
        dt = time.perf_counter() - t0
        if complete is not None and not complete(counts):
            self.reports.append(
                StageReport(stage=marker_name, status="incomplete", seconds=round(dt, 2), counts=counts)
            )
            return False
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
        return True


class _Plan(NamedTuple):
    """What the later stages derive from the config, computed (and so validated) up front."""

    prompt_fp: str
    filter_cfg: FilterConfig
    judge_fp: str | None
    vocab_fp: str
    rules_fp: str


def _plan(cfg: PipelineConfig) -> _Plan:
    """Load every file the config names (prompt sets, vocabulary, evaluation files) and derive the
    stage keys from them; raises the error a stage would raise hours later."""
    if cfg.generate.backend != "template":
        cfg.generate.resolved_model()
        record_budget(cfg.generate, prompt_set_for(cfg.generate))
    filter_cfg = cfg.filter
    if not filter_cfg.prompt_text and cfg.generate.backend != "template":
        # A dialogue that repeats the instructions it was given is a prompt echo: tell the filter
        # what those instructions were.
        filter_cfg = filter_cfg.model_copy(update={"prompt_text": prompt_set_for(cfg.generate).system})
    if filter_cfg.judge:
        filter_cfg.judge_llm.llm_config().resolved_model()
    for ef in cfg.decontaminate.eval_files:
        load_eval_file(ef)
    return _Plan(
        prompt_fp=prompt_fingerprint(cfg.generate),
        filter_cfg=filter_cfg,
        # Editing the judge prompt re-judges, so it reruns filter (the judge's cache keeps old answers).
        judge_fp=judge_fingerprint_for(filter_cfg),
        vocab_fp=vocabulary_fingerprint(filter_cfg.vocabulary),
        rules_fp=code_fingerprint("unimm.filter", "unimm.grounding"),
    )


def _incomplete_message(incomplete: list[tuple[str, dict[str, int]]], work: Path, cfg: PipelineConfig) -> str:
    """What is missing after an outage, where it stands and what to do about it."""
    failed = sum(c.get("transient_failures", 0) for _, c in incomplete)
    reasons: Counter = Counter()
    first = ""
    for pid, _ in incomplete:
        df = pl.read_parquet(work / "generate" / f"failures-{pid}.parquet", columns=["reason", "detail"])
        df = df.filter(
            pl.any_horizontal(pl.col("reason").str.starts_with(p) for p in TRANSIENT_REASONS_PREFIX)
        )
        reasons.update(df["reason"].to_list())
        first = first or (df["detail"][0] if df.height else "")
    servers = ", ".join(cfg.generate.base_urls) or cfg.generate.backend
    by_reason = ", ".join(f"{k} x{v}" for k, v in reasons.most_common())
    return (
        f"generation incomplete: {failed} request(s) in {len(incomplete)} partition(s) failed because "
        f"the server ({servers}) could not answer ({by_reason}; first: {first}). Every answer received "
        "is cached: run the same command again to send only the missing requests."
    )


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
    # The served model is asked for once, before any work, and recorded in the config that keys
    # the stages and enters the manifest.
    cfg = cfg.model_copy(update={"generate": cfg.generate.with_served_model(log)})
    r = _Runner(cfg, work, log)
    # Everything the later stages will read from the config, checked before the first stage runs:
    # a bad prompt set, vocabulary or evaluation file must not surface after hours of generation.
    plan = _plan(cfg)

    # -- ingest: one cached unit per source ---------------------------------------------------
    check_inputs(cfg.data_root, cfg.sources)
    if until == "shards" and cfg.images is not None and not cfg.images.is_dir():
        raise ConfigError(
            f"image root {cfg.images} is not a folder: pass --image-root, or --no-images for shards "
            "without images"
        )
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
    filter_cfg = plan.filter_cfg
    remaining = cfg.generate.limit
    filter_fps: list[str] = []
    incomplete: list[tuple[str, dict[str, int]]] = []
    for part in parts:
        pid = part.stem.removeprefix("part-")
        # Without --limit the partition is the unit: nothing of it is read unless a stage runs.
        n_records: int | None = None
        if remaining is not None:
            n_records = min(_rows(part), remaining)
            remaining -= n_records
        gen_fp = fingerprint("generate", merge_fp, part.name, cfg.generate, plan.prompt_fp, n_records)
        chats_p, fail_p = gen_dir / f"chats-{pid}.parquet", gen_dir / f"failures-{pid}.parquet"

        def run_generate(
            part: Path = part,
            n_records: int | None = n_records,
            chats_p: Path = chats_p,
            fail_p: Path = fail_p,
        ) -> dict[str, int]:
            records = read_partition(part, n_rows=n_records)
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
                "transient_failures": sum(is_transient(f.reason) for f in res.failures),
                "requests_sent": s.requests_sent,
                "cache_hits": s.cache_hits,
                "completion_tokens": s.completion_tokens,
            }

        generated = r.stage(
            "generate",
            gen_fp,
            [chats_p, fail_p],
            run_generate,
            marker_name=f"generate-{pid}",
            # A server outage is not a result: those requests are re-sent by the next run.
            complete=lambda counts: counts["transient_failures"] == 0,
        )
        if not generated:
            incomplete.append((pid, r.reports[-1].counts))
        if stop == 2 or not generated:
            continue

        flt_fp = fingerprint("filter", gen_fp, filter_cfg, plan.judge_fp, plan.vocab_fp, plan.rules_fp)
        kept_p, rej_p = flt_dir / f"kept-{pid}.parquet", flt_dir / f"rejects-{pid}.parquet"

        def run_filter(
            part: Path = part, chats_p: Path = chats_p, kept_p: Path = kept_p, rej_p: Path = rej_p
        ) -> dict[str, int]:
            chats = frame_to_chats(pl.read_parquet(chats_p))
            merged = load_merged([part], {c.image_key for c in chats})
            res, judged = judge_and_filter(
                chats, merged, filter_cfg, cfg.generate, flt_dir / "judge-cache", progress=progress
            )
            workdir.write_parquet_atomic(chats_to_frame(res.kept), kept_p)
            write_rejects(res.rejects, rej_p)
            counts = {"in": len(chats), "kept": len(res.kept), "rejected": len(res.rejects)}
            return {**counts, **(judged.counts() if judged else {})}

        r.stage("filter", flt_fp, [kept_p, rej_p], run_filter, marker_name=f"filter-{pid}")
        filter_fps.append(flt_fp)
    if incomplete:
        # The later stages would publish a corpus missing these dialogues: stop here.
        report = _report(r, None, 0, _reasons(work))
        report.incomplete = _incomplete_message(incomplete, work, cfg)
        return report
    if stop <= 3:
        return _report(r, None, 0, _reasons(work))

    # -- corpus-wide: dedup + decontaminate -----------------------------------------------------
    corpus_dir = work / "corpus"
    corpus_fp = fingerprint(
        "corpus",
        filter_fps,
        cfg.dedup,
        cfg.decontaminate,
        files_fingerprint([Path(p) for p in cfg.decontaminate.files()]),
    )
    ckept_p, crej_p = corpus_dir / "kept.parquet", corpus_dir / "rejects.parquet"

    def run_corpus() -> dict[str, int]:
        chats: list[Chat] = []
        for part in parts:
            pid = part.stem.removeprefix("part-")
            chats += frame_to_chats(pl.read_parquet(flt_dir / f"kept-{pid}.parquet"))
        d = dedup_chats(chats, cfg.dedup)
        kept, rejects = d.kept, list(d.rejects)
        decontam_rejected = 0
        if cfg.decontaminate.eval_files:
            c = decontaminate(kept, _coco_ids(parts, {ch.image_key for ch in kept}), cfg.decontaminate)
            kept, decontam_rejected = c.kept, len(c.rejects)
            rejects += c.rejects
        workdir.write_parquet_atomic(chats_to_frame(kept), ckept_p)
        write_rejects(rejects, crej_p)
        return {
            "in": len(chats),
            "kept": len(kept),
            "dedup_rejected": len(d.rejects),
            "decontam_rejected": decontam_rejected,
        }

    r.stage("corpus", corpus_fp, [ckept_p, crej_p], run_corpus)
    if stop == 4:
        return _report(r, None, 0, _reasons(work))

    # -- shards ---------------------------------------------------------------------------------
    if out is None:
        raise ConfigError("no output folder: pass --out")
    out = Path(out)
    reasons = _reasons(work)
    images = cfg.images.resolve() if cfg.images else None
    # The writer's code is in the key: how it finds images (and what a sample holds) is code, so a
    # shard set written by an older unimm is not reused as if it were this one's.
    shard_fp = fingerprint(
        "shards",
        corpus_fp,
        cfg.shards,
        str(images),
        str(out.resolve()),
        code_fingerprint("unimm.shards", "unimm.card", "unimm.schema"),
    )

    def run_shards() -> dict[str, int]:
        chats = frame_to_chats(pl.read_parquet(ckept_p))
        extra = {
            "config": cfg.model_dump(mode="json"),
            "build_fingerprint": shard_fp,
            "prompt_fingerprint": plan.prompt_fp,
            "rejections_by_reason": dict(sorted(reasons.items())),
        }
        # Every name the sources know an image by is tried, not only the one the chat records.
        files = image_files(parts, {c.image_key for c in chats}) if images else None
        with workdir.atomic_dir(out) as tmp:
            res = write_shards_result(chats, tmp, cfg.shards, images, extra, files)
        write_rejects(res.rejects, shard_rej_p)
        return {
            "samples": int(res.manifest.total_samples),
            "shards": len(res.manifest.shards),
            "rejected": len(res.rejects),
        }

    shard_rej_p = work / "shards" / "rejects.parquet"
    r.stage("shards", shard_fp, [out / "manifest.json", out / CARD_NAME, shard_rej_p], run_shards)
    # What was written, read from the manifest (cached or not), never what was planned.
    n_out = read_manifest(out).total_samples
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
